//! Configuration and URL parsing never panic: every string either parses to a
//! server URL or gives a typed error naming it; every core configuration
//! either validates or gives a typed error.

#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use ldapmux::ServerUrl;
use ldapmux_core::Config;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Case<'a> {
    urls: Vec<&'a str>,
    preferred: Vec<bool>,
    cap: u32,
    conns: u32,
    connect_ms: u32,
    backoff_min_ms: u32,
    backoff_max_ms: u32,
    acquire_ms: u32,
}

fuzz_target!(|case: Case<'_>| {
    let mut b = Config::builder()
        .max_users_per_conn(case.cap)
        .max_conns_per_server(case.conns)
        .connect_timeout(Duration::from_millis(u64::from(case.connect_ms)))
        .probe_backoff(
            Duration::from_millis(u64::from(case.backoff_min_ms)),
            Duration::from_millis(u64::from(case.backoff_max_ms)),
        )
        .default_acquire_timeout(Duration::from_millis(u64::from(case.acquire_ms)));
    for (i, text) in case.urls.iter().take(8).enumerate() {
        match ServerUrl::parse(text) {
            Ok(url) => {
                // A parsed URL round-trips and has a host unless it is ldapi.
                assert_eq!(url.as_str(), text.trim());
                assert!(url.scheme() == ldapmux::Scheme::Ldapi || !url.host().is_empty());
            }
            Err(e) => {
                let shown = e.to_string();
                assert!(!shown.is_empty());
            }
        }
        b = if case.preferred.get(i).copied().unwrap_or(false) {
            b.preferred_server(*text)
        } else {
            b.server(*text)
        };
    }
    if let Err(e) = b.build() {
        assert!(!e.to_string().is_empty());
    }
});
