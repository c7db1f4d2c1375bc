//! One DNS lookup: the resolver, the SRV query through `hickory-resolver`,
//! the answer's records, and the server URLs they name.

use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{Name, RData};

use super::order::rfc2782_order;
use super::{SrvConfig, SrvError, SrvRecord, SrvService};
use crate::url::ServerUrl;

/// One answer: its records (sorted, to compare answers) and TTL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Answer {
    pub(super) name: String,
    pub(super) records: Vec<SrvRecord>,
    pub(super) ttl: Duration,
}

/// An answer in the order the pool will use, with its URLs.
pub(super) struct Ordered {
    pub(super) records: Vec<SrvRecord>,
    pub(super) urls: Vec<String>,
}

impl Answer {
    /// Orders the answer and makes URLs; an answer with no usable server is
    /// an error (the caller keeps its servers).
    pub(super) fn order(
        &self,
        rng: &mut fastrand::Rng,
        service: SrvService,
    ) -> Result<Ordered, SrvError> {
        if self.records.iter().all(|r| r.target == ".") {
            return Err(SrvError::ServiceUnavailable {
                name: self.name.clone(),
            });
        }
        let mut records = Vec::new();
        let mut urls = Vec::new();
        let mut skipped = Vec::new();
        for r in rfc2782_order(&self.records, rng) {
            match record_url(&r, service) {
                Ok(url) => {
                    records.push(r);
                    urls.push(url);
                }
                Err(why) => skipped.push(why),
            }
        }
        if !skipped.is_empty() {
            tracing::warn!(name = %self.name, skipped = ?skipped, "SRV records skipped");
        }
        if urls.is_empty() {
            return Err(SrvError::NoUsableRecord {
                name: self.name.clone(),
                reason: skipped.join("; "),
            });
        }
        Ok(Ordered { records, urls })
    }
}

/// The server URL of a record: the target host name is kept (TLS checks the
/// certificate against it; it is resolved when a connection opens).
fn record_url(r: &SrvRecord, service: SrvService) -> Result<String, String> {
    if r.port == 0 {
        return Err(format!("{}: port 0", r.target));
    }
    let url = format!("{}://{}:{}", service.scheme(), r.target, r.port);
    ServerUrl::parse(&url)
        .map(|u| u.as_str().to_owned())
        .map_err(|e| e.to_string())
}

/// The resolver of `cfg`: its name server, or the system's.
pub(super) fn resolver(cfg: &SrvConfig) -> Result<TokioResolver, SrvError> {
    let mut builder = match cfg.name_server {
        Some(addr) => {
            let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
            for c in &mut ns.connections {
                c.port = addr.port();
            }
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![ns]),
                TokioRuntimeProvider::default(),
            )
        }
        None => TokioResolver::builder_tokio().map_err(|e| SrvError::Resolver(e.to_string()))?,
    };
    builder.options_mut().timeout = cfg.lookup_timeout;
    builder
        .build()
        .map_err(|e| SrvError::Resolver(e.to_string()))
}

/// One lookup, bounded by the lookup timeout, never from the resolver's
/// cache (the schedule already follows the TTL; a lookup after a failure
/// must ask the server).
pub(super) async fn lookup(
    resolver: &TokioResolver,
    name: &Name,
    cfg: &SrvConfig,
) -> Result<Answer, SrvError> {
    let text = name.to_ascii();
    resolver.clear_cache();
    let result = tokio::time::timeout(cfg.lookup_timeout, resolver.srv_lookup(name.clone())).await;
    let lookup = match result {
        Err(_) => {
            return Err(SrvError::Lookup {
                name: text,
                reason: format!("no answer within {:?}", cfg.lookup_timeout),
            });
        }
        Ok(Err(e)) if e.is_no_records_found() => return Err(SrvError::NoRecords { name: text }),
        Ok(Err(e)) => {
            return Err(SrvError::Lookup {
                name: text,
                reason: e.to_string(),
            });
        }
        Ok(Ok(lookup)) => lookup,
    };
    let mut ttl = u32::MAX;
    let mut records: Vec<SrvRecord> = lookup
        .answers()
        .iter()
        .filter_map(|record| match &record.data {
            RData::SRV(srv) => {
                ttl = ttl.min(record.ttl);
                let target = if srv.target.is_root() {
                    ".".to_owned()
                } else {
                    srv.target
                        .to_ascii()
                        .trim_end_matches('.')
                        .to_ascii_lowercase()
                };
                Some(SrvRecord {
                    priority: srv.priority,
                    weight: srv.weight,
                    port: srv.port,
                    target,
                })
            }
            _ => None,
        })
        .collect();
    if records.is_empty() {
        return Err(SrvError::NoRecords { name: text });
    }
    records.sort();
    records.dedup();
    Ok(Answer {
        name: text,
        records,
        ttl: Duration::from_secs(u64::from(ttl)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::srv::testing::{rec, targets};
    use ldapmux_core::Blame;

    #[test]
    fn a_dot_target_means_no_service_and_is_never_a_server() {
        let answer = Answer {
            name: "_ldap._tcp.example.test.".into(),
            records: vec![rec(0, 0, 0, ".")],
            ttl: Duration::from_secs(60),
        };
        let err = answer
            .order(&mut fastrand::Rng::with_seed(1), SrvService::Ldap)
            .err()
            .expect("no service");
        assert!(matches!(err, SrvError::ServiceUnavailable { .. }), "{err}");
        assert_eq!(err.blame(), Blame::Configuration);
        // Mixed with real records (a broken zone): the dot is skipped.
        let order = rfc2782_order(
            &[rec(0, 0, 0, "."), rec(1, 0, 389, "ldap1.example.test")],
            &mut fastrand::Rng::with_seed(1),
        );
        assert_eq!(targets(&order), ["ldap1.example.test"]);
    }

    #[test]
    fn urls_keep_the_host_name_and_follow_the_service() {
        let answer = Answer {
            name: "_ldaps._tcp.example.test.".into(),
            records: vec![
                rec(10, 0, 636, "ldap2.example.test"),
                rec(0, 0, 3636, "ldap1.example.test"),
                rec(5, 0, 0, "broken.example.test"),
                rec(7, 0, 636, "ldap1.example.test"),
            ],
            ttl: Duration::from_secs(60),
        };
        let o = answer
            .order(&mut fastrand::Rng::with_seed(3), SrvService::Ldaps)
            .unwrap();
        assert_eq!(
            o.urls,
            [
                "ldaps://ldap1.example.test:3636",
                "ldaps://ldap1.example.test:636",
                "ldaps://ldap2.example.test:636"
            ]
        );
        let only_bad = Answer {
            records: vec![rec(5, 0, 0, "broken.example.test")],
            ..answer
        };
        let e = only_bad
            .order(&mut fastrand::Rng::with_seed(3), SrvService::Ldap)
            .err()
            .unwrap();
        assert!(matches!(e, SrvError::NoUsableRecord { .. }), "{e}");
    }
}
