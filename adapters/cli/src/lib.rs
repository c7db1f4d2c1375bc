//! # ldapmux-cli: the `ldapmux` command line
//!
//! What operators run (always built):
//!
//! * `ldapmux check <URL…>`: probes servers with the pool's own connect,
//!   TLS and bind logic ([`check`]). `ldapmux check --config FILE` first
//!   shows what a pool built from the file would do ([`config_check`],
//!   with [`config_source`] and [`settings`]).
//! * `ldapmux status --config FILE`: a pool from the file, a read through
//!   it and its status ([`status`]); `--follow` keeps printing, reloads on
//!   SIGHUP and stops on SIGINT / SIGTERM ([`follow`]); `--metrics-addr`
//!   serves Prometheus text ([`metrics_http`]).
//!
//! Behind cargo features, off by default, so that the operators' binary
//! links neither the test harness that starts slapd (`ldapmux-harness`)
//! nor the benchmark and its contenders (`ldapmux-bench`, bb8, deadpool):
//!
//! * feature `demo`, `ldapmux demo`: three real slapd servers on
//!   127.0.0.1, an [`ldapmux::Pool`] in front of them, a mixed load, and a
//!   script — kill the preferred server, bring it back, reload the
//!   configuration, shut down — shown live (module `demo`). Its pieces
//!   are small modules with their own tests: the script (`schedule`), the
//!   operation statistics (`stats`), the event capture (`events`), the
//!   plain text views and the summary with its checks (`view`), and the
//!   live terminal view (`tui`).
//! * feature `bench`, `ldapmux bench`: the end-to-end benchmark against raw
//!   ldap3, bb8 and deadpool (module `bench`).
//!
//! `make demo` and `make bench` pass the feature. In `cargo test
//! --workspace` and `cargo clippy --workspace` both are on: `ldapmux-e2e`
//! asks for them (feature unification), so their code and tests run there.

#[cfg(feature = "bench")]
pub mod bench;
pub mod check;
pub mod cli;
pub mod config_check;
pub mod config_source;
#[cfg(feature = "demo")]
pub mod demo;
#[cfg(feature = "demo")]
pub mod events;
pub mod follow;
pub mod metrics_http;
#[cfg(feature = "demo")]
pub mod schedule;
pub mod settings;
#[cfg(feature = "demo")]
pub mod stats;
pub mod status;
#[cfg(feature = "demo")]
pub mod tui;
#[cfg(feature = "demo")]
pub mod view;
