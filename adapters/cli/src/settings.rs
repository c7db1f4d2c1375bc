//! The timeouts, caps and TLS settings a [`PoolBuilder`] holds, as an
//! operator reads them: what the pool will run with, defaults included.
//!
//! `PoolBuilder` has no getters yet, so the values are read from its `Debug`
//! output (which never shows a password). This is a stopgap until the
//! library exposes them; [`Settings::of`] leaves a field it cannot find as
//! `?`, and this module's test fails if any field goes missing, so a
//! change to the builder is caught here rather than printed wrong.

use ldapmux::PoolBuilder;

/// The settings in effect, each as the builder's `Debug` spells it
/// (durations read `5s`, `250ms`; optional ones `Some(300s)` / `None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// TCP connect + TLS + bind.
    pub connect_timeout: String,
    /// A whole operation, retries included.
    pub op_timeout: String,
    /// Users sharing one connection.
    pub max_users_per_conn: String,
    /// Connections per server.
    pub max_conns_per_server: String,
    /// Fail-back hold-down.
    pub failback_hold_down: String,
    /// First probe delay of a down server.
    pub probe_backoff_min: String,
    /// Longest delay between probes.
    pub probe_backoff_max: String,
    /// Idle close of read connections.
    pub read_idle_timeout: String,
    /// Idle close of write connections.
    pub write_idle_timeout: String,
    /// StartTLS on `ldap://`.
    pub starttls: bool,
    /// Certificates verified.
    pub tls_verify: bool,
    /// The system roots trusted.
    pub system_roots: bool,
    /// A CA file trusted, if any (as written).
    pub ca_file: Option<String>,
}

/// Shown for a value the builder's `Debug` did not give.
const UNKNOWN: &str = "?";

impl Settings {
    /// The settings `builder` holds.
    pub fn of(builder: &PoolBuilder) -> Settings {
        let debug = format!("{builder:?}");
        let text = |name: &str| field(&debug, name).unwrap_or(UNKNOWN).to_owned();
        let flag = |name: &str, default: bool| field(&debug, name).map_or(default, |v| v == "true");
        Settings {
            connect_timeout: text("connect_timeout"),
            op_timeout: text("op_timeout"),
            max_users_per_conn: text("max_users_per_conn"),
            max_conns_per_server: text("max_conns_per_server"),
            failback_hold_down: text("failback_hold_down"),
            probe_backoff_min: text("probe_backoff_min"),
            probe_backoff_max: text("probe_backoff_max"),
            read_idle_timeout: optional(&text("read_idle_timeout")),
            write_idle_timeout: text("write_idle_timeout"),
            starttls: flag("starttls", false),
            // Unknown: say "verified" only if it is known to be.
            tls_verify: flag("verify", false),
            system_roots: flag("system_roots", false),
            ca_file: field(&debug, "ca_file")
                .and_then(|v| v.strip_prefix("Some(")?.strip_suffix(')'))
                .map(|v| v.trim_matches('"').to_owned()),
        }
    }

    /// The lines `check --config` prints.
    pub fn lines(&self) -> Vec<String> {
        vec![
            format!(
                "timeouts: connect {} (TCP + TLS + bind), operation {} (retries included)",
                self.connect_timeout, self.op_timeout
            ),
            format!(
                "caps:     {} users per connection, {} connections per server",
                self.max_users_per_conn, self.max_conns_per_server
            ),
            format!(
                "fail-back hold-down {}; probes of a down server after {} doubling to {}",
                self.failback_hold_down, self.probe_backoff_min, self.probe_backoff_max
            ),
            format!(
                "idle connections closed after: read {}, write {}",
                self.read_idle_timeout, self.write_idle_timeout
            ),
        ]
    }

    /// Which certificates are trusted, e.g. `the CA file /etc/ca.pem and the
    /// system roots`.
    pub fn trust(&self) -> String {
        match (&self.ca_file, self.system_roots) {
            (Some(f), true) => format!("the CA file {f} and the system roots"),
            (Some(f), false) => format!("the CA file {f} only"),
            (None, true) => "the system roots".to_owned(),
            (None, false) => "nothing (no CA file, system roots off)".to_owned(),
        }
    }
}

/// `Some(300s)` → `300s`, `None` → `never`.
fn optional(v: &str) -> String {
    match v {
        "None" => "never".to_owned(),
        v => v
            .strip_prefix("Some(")
            .and_then(|v| v.strip_suffix(')'))
            .unwrap_or(v)
            .to_owned(),
    }
}

/// The value of ` name: value` in a derived `Debug` output: up to the next
/// `,` or `}` outside brackets and quotes.
fn field<'a>(debug: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}: ");
    let start = debug.find(&key)? + key.len();
    let rest = &debug[start..];
    let (mut depth, mut quoted, mut escaped) = (0usize, false, false);
    for (i, c) in rest.char_indices() {
        if quoted {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => quoted = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' if depth > 0 => depth -= 1,
            ',' | '}' if depth == 0 => return Some(rest[..i].trim()),
            _ => {}
        }
    }
    Some(rest.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn every_setting_is_read_from_the_builder() {
        let b = PoolBuilder::new()
            .server("ldap://a")
            .connect_timeout(Duration::from_millis(2500))
            .operation_timeout(Duration::from_secs(7))
            .max_users_per_connection(9)
            .max_connections_per_server(3)
            .failback_hold_down(Duration::from_secs(11))
            .probe_backoff(Duration::from_millis(200), Duration::from_secs(13))
            .read_idle_timeout(None)
            .write_idle_timeout(Duration::from_secs(17))
            .starttls(true)
            .tls_ca_file("/etc/ssl/a, b.pem")
            .tls_system_roots(false)
            .credential(ldapmux::Credential::simple("cn=x", "pw-never-shown"));
        let s = Settings::of(&b);
        assert_eq!(
            s,
            Settings {
                connect_timeout: "2.5s".into(),
                op_timeout: "7s".into(),
                max_users_per_conn: "9".into(),
                max_conns_per_server: "3".into(),
                failback_hold_down: "11s".into(),
                probe_backoff_min: "200ms".into(),
                probe_backoff_max: "13s".into(),
                read_idle_timeout: "never".into(),
                write_idle_timeout: "17s".into(),
                starttls: true,
                tls_verify: true,
                system_roots: false,
                ca_file: Some("/etc/ssl/a, b.pem".into()),
            }
        );
        assert!(!s.lines().concat().contains(UNKNOWN), "{:?}", s.lines());
        assert!(!s.lines().concat().contains("pw-never-shown"));
    }

    #[test]
    fn the_defaults_read_as_documented() {
        let s = Settings::of(&PoolBuilder::new().danger_tls_verify(false));
        assert_eq!(s.connect_timeout, "5s");
        assert_eq!(s.op_timeout, "30s");
        assert_eq!(s.read_idle_timeout, "300s");
        assert!(!s.tls_verify && s.system_roots && !s.starttls);
        assert_eq!(s.trust(), "the system roots");
    }

    #[test]
    fn fields_end_at_their_own_comma_or_brace() {
        let d = r#"A { x: Some("a,}b"), core: C { y: [1, 2], z: 3 } }"#;
        assert_eq!(field(d, "x"), Some(r#"Some("a,}b")"#));
        assert_eq!(field(d, "y"), Some("[1, 2]"));
        assert_eq!(field(d, "z"), Some("3"));
        assert_eq!(field(d, "w"), None);
    }
}
