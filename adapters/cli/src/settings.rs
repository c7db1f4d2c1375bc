//! The timeouts, caps and TLS settings a [`PoolBuilder`] holds, as an
//! operator reads them: what the pool will run with, defaults included
//! (from [`PoolBuilder::config`]).

use std::time::Duration;

use ldapmux::PoolBuilder;

/// The settings in effect, each as an operator reads it (durations read
/// `5s`, `250ms`; an unset idle timeout `never`).
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

impl Settings {
    /// The settings `builder` holds.
    pub fn of(builder: &PoolBuilder) -> Settings {
        let p = builder.config();
        let d = |d: Duration| format!("{d:?}");
        Settings {
            connect_timeout: d(p.connect_timeout),
            op_timeout: d(p.op_timeout),
            max_users_per_conn: p.max_users_per_conn.to_string(),
            max_conns_per_server: p.max_conns_per_server.to_string(),
            failback_hold_down: d(p.failback_hold_down),
            probe_backoff_min: d(p.probe_backoff_min),
            probe_backoff_max: d(p.probe_backoff_max),
            read_idle_timeout: p.read_idle_timeout.map_or("never".to_owned(), d),
            write_idle_timeout: d(p.write_idle_timeout),
            starttls: p.starttls,
            tls_verify: p.tls_verify,
            system_roots: p.tls_system_roots,
            ca_file: p.tls_ca_file.as_ref().map(|f| f.display().to_string()),
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
}
