//! The SVG charts of `benchmarks.md`, drawn with plotters.

use super::*;

pub(super) type ChartResult = Result<(), Box<dyn std::error::Error>>;

pub(super) fn palette(i: usize) -> RGBColor {
    const C: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    C[i % C.len()]
}

pub(super) fn chart_throughput(path: &Path, ms: &[Measurement]) -> ChartResult {
    let names = [
        "ldapmux_default",
        "ldapmux_cap1",
        "raw_shared",
        "raw_per_task",
        "raw_n_conns",
        "bb8_default",
        "bb8_tuned",
        "deadpool_default",
        "deadpool_tuned",
    ];
    let cs = concs(ms);
    let ymax = ms
        .iter()
        .filter(|m| names.contains(&m.contender.as_str()))
        .map(|m| m.ops_per_s)
        .fold(1.0, f64::max)
        * 1.15;
    let root = SVGBackend::new(path, (960, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Random uid searches: throughput vs concurrency (one slapd, same run)",
            ("sans-serif", 20),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (0.8f64..cs.last().map_or(320.0, |&c| c as f64 * 1.25)).log_scale(),
            0f64..ymax,
        )?;
    chart
        .configure_mesh()
        .x_desc("concurrent tasks (log scale)")
        .y_desc("successful ops/s")
        .x_labels(10)
        .draw()?;
    for (i, name) in names.iter().enumerate() {
        let pts: Vec<(f64, f64)> = cs
            .iter()
            .filter_map(|&c| find(ms, name, c).map(|m| (c as f64, m.ops_per_s)))
            .collect();
        if pts.is_empty() {
            continue;
        }
        let color = palette(i);
        let width = if name.starts_with("ldapmux") { 3 } else { 2 };
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(width)))?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(())
}

pub(super) fn chart_frontier(path: &Path, ms: &[Measurement]) -> ChartResult {
    // The spread sweep and the defaults (the cap contender is one user per connection, off the frontier).
    let is_ldapmux =
        |m: &&Measurement| spread_of(&m.contender).is_some() || m.contender == "ldapmux_default";
    let xmax = ms.iter().map(|m| m.server_conns).max().unwrap_or(1).max(2) as f64 * 1.5;
    let ymax = ms
        .iter()
        .filter(|m| m.conc > 1 && !is_scenario(&m.contender))
        .map(|m| m.ops_per_s)
        .fold(1.0, f64::max)
        * 1.15;
    let root = SVGBackend::new(path, (960, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Throughput vs connections slapd saw (ldapmux spread sweep, defaults ringed; raw and peers for reference)",
            ("sans-serif", 18),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d((0.8f64..xmax).log_scale(), 0f64..ymax)?;
    chart
        .configure_mesh()
        .x_desc("server connections (log scale)")
        .y_desc("successful ops/s")
        .draw()?;
    for (i, c) in concs(ms).into_iter().filter(|&c| c > 1).enumerate() {
        let color = palette(i);
        let mut pts: Vec<(f64, f64)> = ms
            .iter()
            .filter(|m| m.conc == c)
            .filter(is_ldapmux)
            .map(|m| (m.server_conns.max(1) as f64, m.ops_per_s))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        if pts.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(3)))?
            .label(format!("ldapmux, conc {c}"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 5, color.filled())))?;
        if let Some(m) = find(ms, "ldapmux_default", c) {
            let p = (m.server_conns.max(1) as f64, m.ops_per_s);
            chart.draw_series(std::iter::once(Circle::new(p, 10, color.stroke_width(2))))?;
            chart.draw_series(std::iter::once(Text::new(
                format!("default c{c}"),
                (p.0 * 1.08, p.1 * 1.02),
                ("sans-serif", 13).into_font(),
            )))?;
        }
        let raw: Vec<(f64, f64)> = ["raw_shared", "raw_n_conns", "raw_per_task"]
            .iter()
            .filter_map(|n| find(ms, n, c))
            .filter(|m| m.failed == 0)
            .map(|m| (m.server_conns.max(1) as f64, m.ops_per_s))
            .collect();
        chart
            .draw_series(
                raw.iter()
                    .map(|&p| TriangleMarker::new(p, 7, color.filled())),
            )?
            .label(format!("raw ldap3, conc {c}"))
            .legend(move |(x, y)| TriangleMarker::new((x + 10, y), 6, color.filled()));
        let peers: Vec<(f64, f64)> = [
            "bb8_default",
            "bb8_tuned",
            "deadpool_default",
            "deadpool_tuned",
        ]
        .iter()
        .filter_map(|n| find(ms, n, c))
        .map(|m| (m.server_conns.max(1) as f64, m.ops_per_s))
        .collect();
        chart
            .draw_series(
                peers
                    .iter()
                    .map(|&p| Cross::new(p, 6, color.stroke_width(2))),
            )?
            .label(format!("bb8 / deadpool, conc {c}"))
            .legend(move |(x, y)| Cross::new((x + 10, y), 5, color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(())
}

pub(super) fn chart_timeline(path: &Path, tl: &Timeline) -> ChartResult {
    let tmax = tl.buckets.last().map_or(1.0, |b| b.t_ms as f64 / 1e3 + 0.1);
    let ymax = tl
        .buckets
        .iter()
        .map(|b| b.ops_per_s.max(b.errors as f64 * 10.0))
        .fold(1.0, f64::max)
        * 1.2;
    let cmax = tl
        .buckets
        .iter()
        .map(|b| b.conns_a.max(b.conns_b))
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.5;
    let root = SVGBackend::new(path, (960, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "ldapmux fail-over and fail-back: ops/s and errors per 100 ms",
            ("sans-serif", 20),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .right_y_label_area_size(60)
        .build_cartesian_2d(0f64..tmax, 0f64..ymax)?
        .set_secondary_coord(0f64..tmax, 0f64..cmax);
    chart
        .configure_mesh()
        .x_desc("seconds since the load started")
        .y_desc("per second (100 ms buckets)")
        .draw()?;
    chart
        .configure_secondary_axes()
        .y_desc("connections (pool's view)")
        .draw()?;
    let step = |f: &dyn Fn(&crate::Bucket) -> f64| -> Vec<(f64, f64)> {
        let mut v = Vec::new();
        for b in &tl.buckets {
            let t = b.t_ms as f64 / 1e3;
            v.push((t, f(b)));
            v.push((t + 0.1, f(b)));
        }
        v
    };
    let blue = palette(0);
    chart
        .draw_series(LineSeries::new(
            step(&|b| b.ops_per_s),
            blue.stroke_width(2),
        ))?
        .label("successful ops/s")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], blue.stroke_width(3)));
    let red = palette(3);
    chart
        .draw_series(LineSeries::new(
            step(&|b| b.errors as f64 * 10.0),
            red.stroke_width(2),
        ))?
        .label("errors/s surfaced to reads")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], red.stroke_width(3)));
    let green = palette(2);
    chart
        .draw_secondary_series(LineSeries::new(
            step(&|b| b.conns_a as f64),
            green.stroke_width(1),
        ))?
        .label("connections to A (preferred)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], green.stroke_width(2)));
    let orange = palette(1);
    chart
        .draw_secondary_series(LineSeries::new(
            step(&|b| b.conns_b as f64),
            orange.stroke_width(1),
        ))?
        .label("connections to B")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], orange.stroke_width(2)));
    let mut events = vec![(tl.kill_ms, "kill -9 A"), (tl.restarted_ms, "A restarted")];
    if let Some(f) = tl.failback_ms {
        events.push((f, "failed back"));
    }
    for (ms, label) in events {
        let x = ms / 1e3;
        chart.draw_series(LineSeries::new(
            vec![(x, 0.0), (x, ymax)],
            BLACK.stroke_width(1),
        ))?;
        chart.draw_series(std::iter::once(Text::new(
            label.to_owned(),
            (x + 0.03, ymax * 0.95),
            ("sans-serif", 14).into_font(),
        )))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(())
}
