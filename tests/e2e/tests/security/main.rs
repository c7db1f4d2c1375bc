//! Security end to end: passwords never show (Debug, Display, errors,
//! TRACE-level logs); a user never gets a connection bound as someone else,
//! under concurrency and reloads; a password check's private connection is
//! never reused; TLS is verified by default; a failed StartTLS never falls
//! back to plain text (checked on the wire and on slapd's counters).
//!
//! Every test of this binary logs at TRACE level into one in-memory buffer
//! (a process-wide subscriber), so the secrets test also checks what the
//! others logged.

mod auth_connections;
#[path = "../common/mod.rs"]
mod common;
mod isolation;
mod secrets;
mod tls;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use ldapmux::PoolError as CoreError;
use ldapmux::{BuildError, ConnErrorKind, Credential, Error, LeaseKind, Mod, Password, Scope};
use ldapmux_harness::{ROOT_PW, Slapd, TestCa};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ----------------------------------------------------------------------
// Helpers
// ----------------------------------------------------------------------

/// The process-wide TRACE subscriber writing into memory (installed once).
fn capture() -> &'static Capture {
    Capture::trace()
}

/// Sets user `i`'s password (as the root DN, on a connection of its own).
async fn set_password(server: &Slapd, i: usize, password: &str) {
    let admin = builder()
        .server(server.url())
        .credential(Credential::simple(server.root_dn(), server.root_pw()))
        .build()
        .unwrap();
    admin
        .modify(
            &Slapd::user_dn(i),
            vec![Mod::Replace(
                "userPassword".to_owned(),
                HashSet::from([password.to_owned()]),
            )],
        )
        .await
        .unwrap();
    admin.shutdown().await;
}

fn identity(i: usize) -> String {
    format!("dn:{}", Slapd::user_dn(i).to_lowercase())
}
