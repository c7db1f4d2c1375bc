//! The OpenLDAP `ldap.conf` reader: each key it knows maps to one
//! [`PoolConfig`](crate::PoolConfig) key ([`KEYS`]); the keys libldap knows
//! and ldapmux cannot honour are refused by name ([`refusal`]), so a setting
//! the file's author relies on never silently has no effect.

use std::path::Path;

use super::{ConfigFile, ConfigFileError, Origin};

/// What an `ldap.conf` value becomes.
enum Value {
    /// This TOML value for the key.
    Set(toml::Value),
    /// Accepted, and nothing to set (`REFERRALS off`).
    Nothing,
}

/// One `ldap.conf` key and the [`PoolConfig`](crate::PoolConfig) key it sets.
struct Key {
    name: &'static str,
    sets: &'static str,
    parse: fn(&str) -> Result<Value, Refused>,
}

enum Refused {
    Bad(String),
    Unsupported(&'static str),
}

/// The keys read, and the configuration key each one sets.
const KEYS: &[Key] = &[
    Key {
        name: "URI",
        sets: "uri",
        parse: uri_list,
    },
    Key {
        name: "BASE",
        sets: "base",
        parse: text,
    },
    Key {
        name: "BINDDN",
        sets: "bind_dn",
        parse: text,
    },
    Key {
        name: "TLS_CACERT",
        sets: "tls_ca_file",
        parse: text,
    },
    Key {
        name: "TLS_CERT",
        sets: "tls_cert_file",
        parse: text,
    },
    Key {
        name: "TLS_KEY",
        sets: "tls_key_file",
        parse: text,
    },
    Key {
        name: "SASL_MECH",
        sets: "sasl_mech",
        parse: sasl_mech,
    },
    Key {
        name: "TLS_REQCERT",
        sets: "tls_verify",
        parse: reqcert,
    },
    Key {
        name: "NETWORK_TIMEOUT",
        sets: "connect_timeout",
        parse: seconds,
    },
    Key {
        name: "TIMEOUT",
        sets: "op_timeout",
        parse: seconds,
    },
    // Not libldap's (it ignores keys it does not know): nslcd.conf's name
    // for the same setting, so one file can serve both.
    Key {
        name: "PAGESIZE",
        sets: "page_size",
        parse: count_or_off,
    },
    Key {
        name: "REFERRALS",
        sets: "",
        parse: referrals,
    },
];

/// Why a key libldap knows is refused, if it is one of those.
fn refusal(upper: &str) -> Option<&'static str> {
    Some(match upper {
        k if k.starts_with("SASL_") || k.starts_with("GSSAPI_") => {
            "of the SASL keys only SASL_MECH (EXTERNAL or GSSAPI) is supported: \
             the identity is the client certificate, the peer credentials or the \
             Kerberos principal, never an authcid/authzid or a SASL password"
        }
        k if k.starts_with("TLS_") => {
            "only TLS_CACERT, TLS_REQCERT, TLS_CERT and TLS_KEY are supported \
             (rustls with the system roots and a CA file)"
        }
        "HOST" | "PORT" => "use URI",
        "SIZELIMIT"
        | "TIMELIMIT"
        | "DEREF"
        | "SOCKET_BIND_ADDRESSES"
        | "KEEPALIVE_IDLE"
        | "KEEPALIVE_PROBES"
        | "KEEPALIVE_INTERVAL"
        | "TCP_USER_TIMEOUT" => "ldapmux has no such setting",
        _ => return None,
    })
}

fn text(value: &str) -> Result<Value, Refused> {
    Ok(Value::Set(toml::Value::String(value.to_owned())))
}

fn uri_list(value: &str) -> Result<Value, Refused> {
    let urls = super::split_uri_list(value).map_err(Refused::Bad)?;
    Ok(Value::Set(toml::Value::Array(
        urls.into_iter().map(toml::Value::String).collect(),
    )))
}

fn sasl_mech(value: &str) -> Result<Value, Refused> {
    match value.to_ascii_uppercase().as_str() {
        mech @ ("EXTERNAL" | "GSSAPI") => Ok(Value::Set(toml::Value::String(mech.into()))),
        _ => Err(Refused::Unsupported(
            "the SASL mechanisms supported are EXTERNAL and GSSAPI",
        )),
    }
}

fn reqcert(value: &str) -> Result<Value, Refused> {
    let verify = match value.to_ascii_lowercase().as_str() {
        "never" => false,
        // `allow` and `try` are treated as the stricter `demand`.
        "allow" | "try" | "demand" | "hard" => true,
        _ => {
            return Err(Refused::Bad(format!(
                "{value:?}: expected never, allow, try, demand or hard"
            )));
        }
    };
    Ok(Value::Set(toml::Value::Boolean(verify)))
}

/// Whole seconds, as libldap reads them (0 is judged by the one check).
fn seconds(value: &str) -> Result<Value, Refused> {
    let n: u64 = value
        .parse()
        .map_err(|_| Refused::Bad(format!("{value:?}: expected whole seconds")))?;
    Ok(Value::Set(toml::Value::String(format!("{n}s"))))
}

/// A whole number or `off` (0 is judged by the one check).
fn count_or_off(value: &str) -> Result<Value, Refused> {
    if value.eq_ignore_ascii_case("off") {
        return Ok(Value::Set(toml::Value::String("off".into())));
    }
    let n: u32 = value
        .parse()
        .map_err(|_| Refused::Bad(format!("{value:?}: expected a number of entries or off")))?;
    Ok(Value::Set(toml::Value::Integer(i64::from(n))))
}

fn referrals(value: &str) -> Result<Value, Refused> {
    match value.to_ascii_lowercase().as_str() {
        "off" | "no" | "false" => Ok(Value::Nothing),
        "on" | "yes" | "true" => Err(Refused::Unsupported(
            "ldapmux follows referrals only for a search that asks (SearchOptions::follow_referrals)",
        )),
        _ => Err(Refused::Bad(format!("{value:?}: expected on or off"))),
    }
}

impl ConfigFile {
    /// Reads `path` as `ldap.conf`: one setting a line, `KEY value`; blank
    /// lines and `#` comments skipped; keys case-insensitive; the last of a
    /// key given twice wins.
    pub(super) fn merge_ldap_conf(&mut self, path: &Path) -> Result<(), ConfigFileError> {
        let text = super::read_text(path)?;
        self.files.push(path.to_owned());
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (key, value) = match l.find(char::is_whitespace) {
                Some(at) => (&l[..at], l[at..].trim()),
                None => (l, ""),
            };
            let upper = key.to_ascii_uppercase();
            let origin = Origin::File {
                path: path.to_owned(),
                line,
                key: key.to_owned(),
            };
            let Some(known) = KEYS.iter().find(|k| k.name == upper) else {
                return Err(match refusal(&upper) {
                    Some(reason) => origin.unsupported(reason),
                    None => ConfigFileError::UnknownKey {
                        path: path.to_owned(),
                        line,
                        key: key.to_owned(),
                    },
                });
            };
            if value.is_empty() {
                return Err(origin.bad("missing value".into()));
            }
            match (known.parse)(value) {
                Ok(Value::Set(v)) => self.give(known.sets, v, origin),
                Ok(Value::Nothing) => {}
                Err(Refused::Bad(reason)) => return Err(origin.bad(reason)),
                Err(Refused::Unsupported(reason)) => return Err(origin.unsupported(reason)),
            }
        }
        Ok(())
    }
}
