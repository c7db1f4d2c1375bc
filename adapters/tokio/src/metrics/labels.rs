//! What the builder says about metrics, and the labels built from it: the
//! `pool` label, credential labels (never a password; the DN only if opted
//! in), redacted server labels, and the fixed label values.

use std::sync::Arc;
use std::time::Duration;

use ldapmux_core::{CloseReason, ConnErrorKind, CredKey, Purpose, UserKind};
use metrics::{Label, SharedString};

use super::record::KeyCache;

/// What the builder says about metrics; part of each generation's settings.
#[derive(Clone, Debug)]
pub(crate) struct MetricsConfig {
    /// The `pool` label, if any.
    pub(crate) name: Option<SharedString>,
    /// Label credentials with their bind DN (opt-in).
    pub(crate) bind_dn_labels: bool,
    /// Caller-chosen credential labels by bind DN (compared case-insensitively).
    pub(crate) cred_labels: Vec<(String, SharedString)>,
    /// How often the gauges are published (`None`: only on demand).
    pub(crate) interval: Option<Duration>,
    /// The keys of the per-operation metrics, built on first use.
    pub(crate) keys: KeyCache,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            name: None,
            bind_dn_labels: false,
            cred_labels: Vec::new(),
            interval: Some(Duration::from_secs(1)),
            keys: KeyCache::default(),
        }
    }
}

impl MetricsConfig {
    /// The metrics part of a configuration.
    pub(crate) fn of(c: &crate::PoolConfig) -> MetricsConfig {
        MetricsConfig {
            name: c.metrics_name.clone().map(Into::into),
            bind_dn_labels: c.metrics_bind_dn_labels,
            cred_labels: c
                .metrics_credential_labels
                .iter()
                .map(|(dn, label)| (dn.clone(), label.clone().into()))
                .collect(),
            interval: c.metrics_interval,
            keys: Default::default(),
        }
    }

    /// `pairs` plus the `pool` label if set.
    pub(super) fn labels<const N: usize>(
        &self,
        pairs: [(&'static str, SharedString); N],
    ) -> Vec<Label> {
        let mut labels = Vec::with_capacity(N + 1);
        if let Some(name) = &self.name {
            labels.push(Label::new("pool", name.clone()));
        }
        labels.extend(pairs.into_iter().map(|(k, v)| Label::new(k, v)));
        labels
    }

    /// The label of the credential `key` whose bind DN is `dn` (`None`:
    /// anonymous or unknown). Never a password; the DN only if opted in.
    pub(crate) fn credential_label(&self, key: CredKey, dn: Option<&str>) -> SharedString {
        if key == CredKey::ANONYMOUS {
            return SharedString::const_str("anonymous");
        }
        if let Some(dn) = dn {
            if let Some((_, label)) = self
                .cred_labels
                .iter()
                .find(|(d, _)| d.eq_ignore_ascii_case(dn))
            {
                return label.clone();
            }
            if self.bind_dn_labels {
                return SharedString::from(Arc::<str>::from(dn));
            }
        }
        SharedString::from(format!("cred-{}", key.0))
    }
}

/// The `server` label of an address: the URL with any password redacted.
pub(crate) fn server_label(addr: &str) -> SharedString {
    SharedString::from(Arc::<str>::from(crate::url::redacted(addr)))
}

/// The `purpose` label of a connection.
pub(super) fn purpose_label(p: Purpose) -> &'static str {
    match p {
        Purpose::Read => "read",
        Purpose::Write => "write",
        Purpose::Private => "private",
        Purpose::Bind => "bind",
    }
}

/// The `purpose` label of an operation kind.
pub(crate) fn kind_label(kind: UserKind) -> &'static str {
    purpose_label(kind.purpose())
}

/// The `reason` label of a connection the core closed.
pub(super) fn close_reason_label(r: CloseReason) -> &'static str {
    match r {
        CloseReason::Idle => "idle",
        CloseReason::MaxAge => "max_age",
        CloseReason::Broken => "broken",
        CloseReason::ServerDown => "server_down",
        CloseReason::FailBack => "fail_back",
        CloseReason::Reload => "reload",
        CloseReason::Shutdown => "shutdown",
        CloseReason::Done => "done",
        CloseReason::ConnectTimeout => "connect_timeout",
        CloseReason::MakeRoom => "make_room",
        CloseReason::RaceLost => "race_lost",
        CloseReason::SiblingBroken => "sibling_broken",
        CloseReason::Retired => "retired",
        CloseReason::CredentialExpiring => "credential_expiring",
        CloseReason::ServerNotice => "server_notice",
        _ => "other",
    }
}

/// The `kind` label of a failed connection attempt.
pub(super) fn conn_error_label(k: ConnErrorKind) -> &'static str {
    match k {
        ConnErrorKind::Refused => "refused",
        ConnErrorKind::Timeout => "timeout",
        ConnErrorKind::Tls => "tls",
        ConnErrorKind::InvalidCredentials => "invalid_credentials",
        ConnErrorKind::Io => "io",
        ConnErrorKind::ServerDown => "server_down",
        _ => "other",
    }
}

/// The labels of one connection, computed once when it opens.
#[derive(Clone, Debug)]
pub(crate) struct ConnLabels {
    pub(crate) server: SharedString,
    pub(crate) credential: SharedString,
    pub(crate) purpose: &'static str,
}

impl ConnLabels {
    /// The labels of a connection to `addr` for `cred` (bind DN `dn`).
    pub(crate) fn new(
        cfg: &MetricsConfig,
        addr: &str,
        cred: CredKey,
        dn: Option<&str>,
        purpose: Purpose,
    ) -> Self {
        ConnLabels {
            server: server_label(addr),
            credential: cfg.credential_label(cred, dn),
            purpose: purpose_label(purpose),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_labels_show_no_dn_unless_asked_and_never_a_password() {
        let dn = "uid=alice,ou=people,dc=example,dc=com";
        let mut cfg = MetricsConfig::default();
        assert_eq!(
            &*cfg.credential_label(CredKey::ANONYMOUS, None),
            "anonymous"
        );
        assert_eq!(&*cfg.credential_label(CredKey(3), Some(dn)), "cred-3");
        assert_eq!(&*cfg.credential_label(CredKey(4), None), "cred-4");
        cfg.bind_dn_labels = true;
        assert_eq!(&*cfg.credential_label(CredKey(3), Some(dn)), dn);
        assert_eq!(
            &*cfg.credential_label(CredKey::ANONYMOUS, None),
            "anonymous"
        );
        cfg.cred_labels.push((
            "UID=Alice,ou=people,dc=example,dc=com".into(),
            "reader".into(),
        ));
        assert_eq!(&*cfg.credential_label(CredKey(3), Some(dn)), "reader");
    }

    #[test]
    fn server_labels_redact_a_password() {
        assert_eq!(
            &*server_label("ldap://127.0.0.1:389"),
            "ldap://127.0.0.1:389"
        );
        let shown = server_label("ldaps://admin:s3cret@h:636/");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(!shown.contains("admin"), "{shown}");
        assert_eq!(&*shown, "ldaps://<redacted>@h:636/");
    }

    #[test]
    fn the_pool_label_comes_first_when_set() {
        let mut cfg = MetricsConfig::default();
        let l = cfg.labels([("op", "search".into())]);
        assert_eq!(l, vec![Label::new("op", "search")]);
        cfg.name = Some("main".into());
        let l = cfg.labels([("op", "search".into())]);
        assert_eq!(
            l,
            vec![Label::new("pool", "main"), Label::new("op", "search")]
        );
    }
}
