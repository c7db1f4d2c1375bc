//! Secrets never leak: passwords are absent from `Debug`, `Display`, errors
//! and every `tracing` event (captured at TRACE level), even when binds fail.

mod common;

use common::*;
use ldapmux::{Credential, Password};
use ldapmux_harness::Slapd;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_never_appear_in_debug_errors_or_logs() {
    let capture = Capture::trace();

    let server = slapd(10);
    let good = "GoodSecret-4b1e";
    let bad = "WrongSecret-9c2d";
    let pool = builder()
        .server(server.url())
        .credential(Credential::simple(
            Slapd::user_dn(1),
            Slapd::user_password(1),
        ))
        .build()
        .unwrap();
    // A credential the server refuses, an authenticate with a wrong and a
    // right password, a bound search.
    let refused = pool
        .with_credential(Credential::simple(Slapd::user_dn(2), bad))
        .whoami()
        .await
        .unwrap_err();
    assert_eq!(
        refused.conn_error_kind(),
        Some(ldapmux::ConnErrorKind::InvalidCredentials),
        "{refused}"
    );
    assert_eq!(
        pool.authenticate(&Slapd::user_dn(3), &Password::new(bad))
            .await
            .unwrap(),
        ldapmux::AuthOutcome::InvalidCredentials
    );
    let pw3 = Slapd::user_password(3);
    assert!(
        pool.authenticate(&Slapd::user_dn(3), &Password::new(pw3.clone()))
            .await
            .unwrap()
            .is_accepted()
    );
    search_user(&pool, 4).await.unwrap();
    let _ = pool
        .with_credential(Credential::simple(Slapd::user_dn(5), good))
        .whoami()
        .await;

    let shown = [
        format!("{refused}"),
        format!("{refused:?}"),
        format!("{pool:?}"),
        format!(
            "{:?}",
            pool.with_credential(Credential::simple("cn=x", good))
        ),
        format!("{:?}", Credential::simple("cn=x", good)),
        format!("{:?}", pool.status()),
    ]
    .join("\n");
    pool.shutdown().await;
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("connection open and bound"),
        "tracing events were captured:\n{logs}"
    );
    assert!(
        logs.contains("connection failed to open"),
        "the refused bind was logged:\n{logs}"
    );
    for secret in [good, bad, pw3.as_str(), &Slapd::user_password(1)] {
        assert!(!shown.contains(secret), "{secret} shown in:\n{shown}");
        assert!(!logs.contains(secret), "{secret} logged");
    }
}
