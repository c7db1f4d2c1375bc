//! The matrix, one test per fault: every cell run, each as its expectation says.

use super::*;

/// Runs every cell of `fault`, `PARALLEL` at a time, and fails naming every
/// failed cell.
async fn matrix(fault: Fault) {
    init_tracing();
    let started = Instant::now();
    let limit = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    let runs: Vec<_> = cells(fault)
        .into_iter()
        .enumerate()
        .map(|(i, cell)| {
            let limit = limit.clone();
            let task = tokio::spawn(async move {
                let _slot = limit.acquire_owned().await.expect("semaphore");
                tokio::time::timeout(CELL_DEADLINE, run_cell(cell, 7 + i as u64)).await
            });
            (cell, task)
        })
        .collect();
    let mut failures = Vec::new();
    let mut lines = Vec::new();
    for (cell, task) in runs {
        match task.await {
            Ok(Ok(r)) => lines.push(format!(
                "{:<55} {:>13?} in {:>5} ms, sent {}, {}, cell {} ms",
                r.cell.to_string(),
                r.class,
                r.took.as_millis(),
                r.sends,
                r.storm.map_or("no storm check".into(), |(a, o)| format!(
                    "{a} connect attempts / {o} ops"
                )),
                r.total.as_millis()
            )),
            Ok(Err(_)) => failures.push(format!("{cell} did not finish within {CELL_DEADLINE:?}")),
            Err(e) => {
                let msg = e
                    .try_into_panic()
                    .ok()
                    .and_then(|p| {
                        p.downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    })
                    .unwrap_or_else(|| "cancelled".into());
                failures.push(format!("{cell}: {msg}"));
            }
        }
    }
    println!(
        "{fault:?}: {} cells in {:?}",
        lines.len() + failures.len(),
        started.elapsed()
    );
    for l in &lines {
        println!("  {l}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} {fault:?} cells failed:\n{}",
        failures.len(),
        failures.len() + lines.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset() {
    matrix(Fault::Reset).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fin_close() {
    matrix(Fault::Fin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_reads() {
    matrix(Fault::Stall).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_hole() {
    matrix(Fault::Blackhole).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drip() {
    matrix(Fault::Drip).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage() {
    matrix(Fault::Garbage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay() {
    matrix(Fault::Delay).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slapd_sigkill() {
    matrix(Fault::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slapd_sigstop() {
    matrix(Fault::Freeze).await;
}

/// The table covers every cell, and the auth cells that are not meaningful
/// are the only ones left out.
#[test]
fn the_matrix_has_126_cells() {
    let all: Vec<Cell> = [
        Fault::Reset,
        Fault::Fin,
        Fault::Stall,
        Fault::Blackhole,
        Fault::Drip,
        Fault::Garbage,
        Fault::Delay,
        Fault::Kill,
        Fault::Freeze,
    ]
    .into_iter()
    .flat_map(cells)
    .collect();
    assert_eq!(all.len(), 9 * (3 * 4 + 2));
    for c in all {
        let e = expected(c);
        assert!(!e.classes.is_empty(), "{c}");
    }
}
