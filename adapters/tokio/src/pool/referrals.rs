//! Following referrals, when a search asks for it
//! ([`SearchOptions::follow_referrals`]): each continuation reference or
//! referral result names a server and a search to make there; the pool
//! makes it on a referral connection (kept apart from every other, the
//! seed's `referral` flag), within a hop limit, refusing a search it has
//! already made (a loop) and any URL that is not `ldap://` or `ldaps://`.
//!
//! A referral connection is bound with the handle's credential only if the
//! configuration lists the server it goes to; to any other server it binds
//! anonymously, so a referral never carries a password to a server nobody
//! configured (`docs/security.md`).

use std::collections::{HashSet, VecDeque};

use ldap3::Scope;

use super::Pool;
use crate::ops::{Op, reply};
use crate::search::{SearchOptions, SearchResults};
use crate::url::{Scheme, ServerUrl};
use crate::{Credential, Error, ReferralError};

/// One search a referral asks for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Target {
    server: String,
    base: String,
    scope: ScopeKey,
    filter: String,
}

/// `Scope` without its lack of `Hash`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum ScopeKey {
    Base,
    One,
    Sub,
}

impl ScopeKey {
    fn of(scope: Scope) -> ScopeKey {
        match scope {
            Scope::Base => ScopeKey::Base,
            Scope::OneLevel => ScopeKey::One,
            Scope::Subtree => ScopeKey::Sub,
        }
    }

    fn scope(self) -> Scope {
        match self {
            ScopeKey::Base => Scope::Base,
            ScopeKey::One => Scope::OneLevel,
            ScopeKey::Sub => Scope::Subtree,
        }
    }
}

/// Where a referral came from: the search it answered, and whether it
/// was a continuation reference (RFC 4511 §4.5.3) or a referral result
/// (§4.1.10).
struct Origin<'a> {
    base: &'a str,
    scope: Scope,
    filter: &'a str,
    continuation: bool,
}

/// Reads `url` as the search to make: its DN, scope and filter where it
/// gives them, the original search's otherwise (a continuation reference
/// of a one-level search searches the referred entry itself).
fn target(url: &str, from: &Origin<'_>) -> Result<(ServerUrl, Target), ReferralError> {
    let not_ldap = || ReferralError::NotLdap;
    let parsed = url::Url::parse(url).map_err(|_| not_ldap())?;
    if !matches!(parsed.scheme(), "ldap" | "ldaps") || parsed.host_str().is_none() {
        return Err(not_ldap());
    }
    let host = parsed.host_str().unwrap_or_default();
    let server = match parsed.port() {
        Some(port) => format!("{}://{host}:{port}", parsed.scheme()),
        None => format!("{}://{host}", parsed.scheme()),
    };
    let server_url = ServerUrl::parse(&server).map_err(|_| not_ldap())?;
    let decode =
        |text: &str| percent_decode(text).ok_or(ReferralError::Invalid("not UTF-8 once decoded"));
    let dn = decode(parsed.path().trim_start_matches('/'))?;
    let query = parsed.query().unwrap_or("");
    let mut parts = query.splitn(4, '?');
    let _attrs = parts.next();
    let scope = match parts.next().unwrap_or("") {
        "" if from.continuation && from.scope == Scope::OneLevel => Scope::Base,
        "" => from.scope,
        "base" => Scope::Base,
        "one" => Scope::OneLevel,
        "sub" => Scope::Subtree,
        _ => return Err(ReferralError::Invalid("an unknown scope")),
    };
    let filter = decode(parts.next().unwrap_or(""))?;
    if parts
        .next()
        .is_some_and(|ext| ext.split(',').any(|e| e.starts_with('!')))
    {
        return Err(ReferralError::Invalid("a critical extension"));
    }
    let target = Target {
        server: key(&server_url),
        base: if dn.is_empty() {
            from.base.to_owned()
        } else {
            dn
        },
        scope: ScopeKey::of(scope),
        filter: if filter.is_empty() {
            from.filter.to_owned()
        } else {
            filter
        },
    };
    Ok((server_url, target))
}

fn percent_decode(text: &str) -> Option<String> {
    let decoded = percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .ok()?;
    Some(decoded.into_owned())
}

impl Pool {
    /// [`Pool::search_with`] following referrals: the first search as any,
    /// then each referral's search on a referral connection to its server,
    /// breadth first, each hop counted from the first search.
    pub(super) async fn search_following(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        options: &SearchOptions,
    ) -> Result<SearchResults, Error> {
        let hops = options.follow_referrals;
        let mut plain = options.clone();
        plain.follow_referrals = 0;
        let op = Op::Search {
            base,
            scope,
            filter,
            attrs,
            options: &plain,
            page: None,
        };
        let mut made = HashSet::new();
        let (mut found, pending) = match self.acquire_and_run(&op).await {
            Ok((reply, lease, _, server)) => {
                lease.release();
                if let Some(url) = self.server_url(server)
                    && let Ok(url) = ServerUrl::parse(&url)
                {
                    made.insert(Target {
                        server: key(&url),
                        base: base.to_owned(),
                        scope: ScopeKey::of(scope),
                        filter: filter.to_owned(),
                    });
                }
                let mut found = reply!(reply, Found);
                let refs = std::mem::take(&mut found.referrals);
                (found, (refs, true))
            }
            Err(Error::Ldap(status)) if status.rc == 10 => {
                (SearchResults::default(), (status.referrals, false))
            }
            Err(e) => return Err(e),
        };
        let origin = |continuation| Origin {
            base,
            scope,
            filter,
            continuation,
        };
        let mut queue: VecDeque<(String, u8, bool)> = VecDeque::new();
        queue.extend(pending.0.into_iter().map(|url| (url, 1, pending.1)));
        while let Some((url, hop, continuation)) = queue.pop_front() {
            let refused = |reason| Error::Referral {
                url: url.clone(),
                reason,
            };
            if hop > hops {
                return Err(refused(ReferralError::TooManyHops(hops)));
            }
            let (server, target) = target(&url, &origin(continuation)).map_err(refused)?;
            if !made.insert(target.clone()) {
                return Err(refused(ReferralError::Loop));
            }
            let there = self.for_referral(&server);
            let op = Op::Search {
                base: &target.base,
                scope: target.scope.scope(),
                filter: &target.filter,
                attrs,
                options: &plain,
                page: None,
            };
            tracing::debug!(%url, hop, "following a referral");
            match there.run(&op).await {
                Ok(reply) => {
                    let more = reply!(reply, Found);
                    found.entries.extend(more.entries);
                    queue.extend(more.referrals.into_iter().map(|u| (u, hop + 1, true)));
                }
                Err(Error::Ldap(status)) if status.rc == 10 => {
                    queue.extend(status.referrals.into_iter().map(|u| (u, hop + 1, false)));
                }
                Err(e) => return Err(refused(ReferralError::Failed(Box::new(e)))),
            }
        }
        Ok(found)
    }

    /// A handle for a referral's search on `server`: referral connections
    /// only, bound with this handle's credential if the configuration
    /// lists the server, anonymously otherwise.
    fn for_referral(&self, server: &ServerUrl) -> Pool {
        let settings = self.inner.shared.settings();
        let listed = settings.urls.iter().any(|u| key(u) == key(server));
        let mut p = self.clone();
        p.opts.server = Some(server.as_str().to_owned());
        p.opts.referral = true;
        if !listed {
            p.opts.credential = Some(Credential::Anonymous);
        }
        p
    }
}

/// A server as a referral names it: scheme, host (any case) and port.
fn key(url: &ServerUrl) -> String {
    let scheme = match url.scheme() {
        Scheme::Ldap => "ldap",
        Scheme::Ldaps => "ldaps",
        Scheme::Ldapi => "ldapi",
    };
    format!(
        "{scheme}://{}:{}",
        url.host().to_ascii_lowercase(),
        url.port()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(scope: Scope, continuation: bool) -> Origin<'static> {
        Origin {
            base: "dc=example,dc=com",
            scope,
            filter: "(uid=*)",
            continuation,
        }
    }

    #[test]
    fn a_referral_url_gives_its_own_dn_scope_and_filter_or_the_searchs() {
        let (server, t) = target(
            "ldap://LDAP2.example.com:3389/ou=people,dc=example,dc=com??one?(cn=a%20b)",
            &from(Scope::Subtree, true),
        )
        .unwrap();
        assert_eq!(server.port(), 3389);
        assert_eq!(t.server, "ldap://ldap2.example.com:3389");
        assert_eq!(t.base, "ou=people,dc=example,dc=com");
        assert_eq!(t.scope, ScopeKey::One);
        assert_eq!(t.filter, "(cn=a b)");
        // Nothing given: the search's own; a one-level search's
        // continuation reference searches the referred entry itself.
        let (_, t) = target("ldaps://b.example.com/", &from(Scope::OneLevel, true)).unwrap();
        assert_eq!(
            (t.base.as_str(), t.scope, t.filter.as_str()),
            ("dc=example,dc=com", ScopeKey::Base, "(uid=*)")
        );
        assert_eq!(t.server, "ldaps://b.example.com:636");
        let (_, t) = target("ldap://b/ou=x", &from(Scope::OneLevel, false)).unwrap();
        assert_eq!(t.scope, ScopeKey::One, "a referral result keeps the scope");
    }

    #[test]
    fn what_is_not_an_ldap_search_is_refused_naming_why() {
        for url in [
            "http://b.example.com/",
            "mailto:x@y",
            "ldapi://%2Frun%2Fldapi",
            "ldap:///ou=x",
            "not a url",
        ] {
            assert!(
                matches!(
                    target(url, &from(Scope::Subtree, true)),
                    Err(ReferralError::NotLdap)
                ),
                "{url}"
            );
        }
        for (url, why) in [
            ("ldap://b/ou=x??sideways", "scope"),
            ("ldap://b/ou=x????!1.2.3", "critical"),
            ("ldap://b/ou=%ff", "UTF-8"),
        ] {
            match target(url, &from(Scope::Subtree, true)) {
                Err(ReferralError::Invalid(reason)) => {
                    assert!(reason.contains(why), "{url}: {reason}")
                }
                other => panic!("{url}: {other:?}"),
            }
        }
    }
}
