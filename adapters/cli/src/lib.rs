//! # ldapmux-cli: the `ldapmux` command line
//!
//! * `ldapmux demo`: three real slapd servers on 127.0.0.1, an
//!   [`ldapmux::Pool`] in front of them, a mixed load, and a script — kill
//!   the preferred server, bring it back, reload the configuration, shut
//!   down — shown live ([`demo`]).
//! * `ldapmux check <URL…>`: probes servers with the pool's own connect,
//!   TLS and bind logic ([`check`]). `ldapmux check --config FILE` first
//!   shows what a pool built from the file would do ([`config_check`],
//!   with [`config_source`] and [`settings`]).
//! * `ldapmux status --config FILE`: a pool from the file, a read through
//!   it and its status ([`status`]); `--follow` keeps printing, reloads on
//!   SIGHUP and stops on SIGINT / SIGTERM ([`follow`]); `--metrics-addr`
//!   serves Prometheus text ([`metrics_http`]).
//! * `ldapmux bench`: the end-to-end benchmark against raw ldap3, bb8 and
//!   deadpool ([`mod@bench`]).
//!
//! The demo's pieces are small modules with their own tests: the script
//! ([`schedule`]), the operation statistics ([`stats`]), the event capture
//! ([`events`]), the plain text views and the summary with its checks
//! ([`view`]), and the live terminal view ([`tui`]).

pub mod bench;
pub mod check;
pub mod cli;
pub mod config_check;
pub mod config_source;
pub mod demo;
pub mod events;
pub mod follow;
pub mod metrics_http;
pub mod schedule;
pub mod settings;
pub mod stats;
pub mod status;
pub mod tui;
pub mod view;
