//! `ldapmux bench --paged`: entries enumerated per second with paging, ldapmux's
//! `streaming_search` against raw ldap3 with its `PagedResults` adapter on one
//! connection (the baseline), on one slapd whose limits cap unpaged searches at
//! 500 and let paged ones through. Rounds alternate between the two, so both
//! see the same machine; the figure is the ratio of their medians.

use std::time::Instant;

use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{LdapConnAsync, Scope};
use ldapmux_harness::Slapd;

use crate::BenchError;
use crate::stats::{median, ratio};

/// Users in the directory, each enumerated once per round.
pub const PAGED_USERS: usize = 10_000;
/// Entries per page, for both (ldapmux's default).
pub const PAGE: i32 = 500;
const ROUNDS: usize = 7;

/// What `--paged` measured.
#[derive(Debug, Clone)]
pub struct PagedFigures {
    /// Entries per second, median over the rounds: raw ldap3.
    pub raw_entries_per_s: f64,
    /// The same for ldapmux.
    pub ldapmux_entries_per_s: f64,
    /// ldapmux / raw.
    pub ratio: f64,
    /// Rounds of each.
    pub rounds: usize,
}

/// Runs the comparison (about 20 s) and prints one line per contender.
pub async fn run_paged() -> Result<PagedFigures, BenchError> {
    let server = Slapd::builder()
        .users(PAGED_USERS)
        .groups(1)
        .threads(4)
        .database_config(
            "limits anonymous size.soft=500 size.hard=500 size.pr=500 size.prtotal=unlimited",
        )
        .start()
        .map_err(|e| BenchError::Slapd(e.to_string()))?;
    let pool = ldapmux::Pool::builder()
        .server(server.url())
        .page_size(Some(PAGE as u32))
        .build()
        .map_err(|e| BenchError::Setup(format!("pool: {e}")))?;
    let (conn, mut ldap) = LdapConnAsync::new(&server.url())
        .await
        .map_err(|e| BenchError::Setup(format!("raw ldap3 connect: {e}")))?;
    let driver = tokio::spawn(conn.drive());

    let (mut raw, mut pooled) = (Vec::new(), Vec::new());
    // One warm-up round each (connections, root DSE), then the measured ones.
    for round in 0..=ROUNDS {
        let t = Instant::now();
        let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(PAGE)),
        ];
        let mut search = ldap
            .streaming_search_with(
                adapters,
                Slapd::people_base(),
                Scope::OneLevel,
                "(uid=*)",
                vec!["uid"],
            )
            .await
            .map_err(|e| BenchError::Setup(format!("raw paged search: {e}")))?;
        let mut n = 0;
        while search
            .next()
            .await
            .map_err(|e| BenchError::Setup(format!("raw paged search: {e}")))?
            .is_some()
        {
            n += 1;
        }
        search
            .finish()
            .await
            .success()
            .map_err(|e| BenchError::Setup(format!("raw paged search: {e}")))?;
        check(n, "raw ldap3")?;
        let raw_rate = n as f64 / t.elapsed().as_secs_f64();

        let t = Instant::now();
        let mut stream = pool
            .streaming_search(Slapd::people_base(), Scope::OneLevel, "(uid=*)", &["uid"])
            .await
            .map_err(|e| BenchError::Setup(format!("ldapmux paged search: {e}")))?;
        let mut n = 0;
        while let Some(entry) = stream.next_entry().await {
            entry.map_err(|e| BenchError::Setup(format!("ldapmux paged search: {e}")))?;
            n += 1;
        }
        check(n, "ldapmux")?;
        let pooled_rate = n as f64 / t.elapsed().as_secs_f64();
        if round > 0 {
            raw.push(raw_rate);
            pooled.push(pooled_rate);
        }
    }
    let _ = ldap.unbind().await;
    driver.abort();
    pool.shutdown().await;
    let figures = PagedFigures {
        raw_entries_per_s: median(&raw).unwrap_or(0.0),
        ldapmux_entries_per_s: median(&pooled).unwrap_or(0.0),
        ratio: ratio(median(&pooled).unwrap_or(0.0), median(&raw).unwrap_or(0.0)).unwrap_or(0.0),
        rounds: ROUNDS,
    };
    println!(
        "paged contender=raw_ldap3_paged_results entries={PAGED_USERS} page={PAGE} entries_per_s={:.0}",
        figures.raw_entries_per_s
    );
    println!(
        "paged contender=ldapmux_streaming_search entries={PAGED_USERS} page={PAGE} entries_per_s={:.0}",
        figures.ldapmux_entries_per_s
    );
    println!("paged ratio_vs_raw={:.3} rounds={ROUNDS}", figures.ratio);
    Ok(figures)
}

fn check(n: usize, who: &str) -> Result<(), BenchError> {
    if n == PAGED_USERS {
        Ok(())
    } else {
        Err(BenchError::Setup(format!(
            "{who} enumerated {n} entries of {PAGED_USERS}"
        )))
    }
}
