//! How the values of a [`PoolConfig`](super::PoolConfig) are written:
//! human durations (`"5s"`, `"1m 30s"`, by `humantime`), `"off"` for a
//! setting turned off, and the names of the enums.

use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

fn parse(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("{text:?} is not a duration ({e}); write it as \"5s\", \"250ms\" or \"1m 30s\"")
    })
}

fn show(d: Duration) -> String {
    if d.is_zero() {
        "0s".to_owned()
    } else {
        humantime::format_duration(d).to_string()
    }
}

fn is_off(text: &str) -> bool {
    matches!(
        text.trim().to_ascii_lowercase().as_str(),
        "off" | "never" | "none"
    )
}

/// A duration: `"5s"`.
pub(super) mod duration {
    use super::*;

    pub(in crate::pool_config) fn serialize<S: Serializer>(
        d: &Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&show(*d))
    }

    pub(in crate::pool_config) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(D::Error::custom)
    }
}

/// A duration or `"off"` (`None`).
pub(super) mod duration_or_off {
    use super::*;

    pub(in crate::pool_config) fn serialize<S: Serializer>(
        d: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&show(*d)),
            None => s.serialize_str("off"),
        }
    }

    pub(in crate::pool_config) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        if is_off(&text) {
            return Ok(None);
        }
        parse(&text).map(Some).map_err(D::Error::custom)
    }
}

/// A count or `"off"` (`None`): `page_size = 500`, `page_size = "off"`.
pub(super) mod count_or_off {
    use super::*;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Count(i64),
        Text(String),
    }

    pub(in crate::pool_config) fn serialize<S: Serializer>(
        v: &Option<u32>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(n) => s.serialize_u32(*n),
            None => s.serialize_str("off"),
        }
    }

    pub(in crate::pool_config) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<u32>, D::Error> {
        match Form::deserialize(d)? {
            Form::Count(n) => u32::try_from(n)
                .map(Some)
                .map_err(|_| D::Error::custom(format!("{n} is out of range (0 to {})", u32::MAX))),
            Form::Text(text) if is_off(&text) => Ok(None),
            Form::Text(text) => Err(D::Error::custom(format!(
                "{text:?}: expected a number or \"off\""
            ))),
        }
    }
}

/// [`Sharing`](ldapmux_core::Sharing): `"always"` or `"on_request"`.
pub(super) mod sharing {
    use super::*;
    use ldapmux_core::Sharing;

    pub(in crate::pool_config) fn serialize<S: Serializer>(
        v: &Sharing,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(match v {
            Sharing::Always => "always",
            Sharing::OnRequest => "on_request",
        })
    }

    pub(in crate::pool_config) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Sharing, D::Error> {
        let text = String::deserialize(d)?;
        match text.to_ascii_lowercase().as_str() {
            "always" => Ok(Sharing::Always),
            "on_request" => Ok(Sharing::OnRequest),
            _ => Err(D::Error::custom(format!(
                "{text:?}: expected \"always\" or \"on_request\""
            ))),
        }
    }
}

/// [`SrvService`](crate::SrvService): `"ldap"` or `"ldaps"`, any case.
pub(super) mod srv_service {
    use super::*;
    use crate::SrvService;

    pub(in crate::pool_config) fn serialize<S: Serializer>(
        v: &Option<SrvService>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(SrvService::Ldaps) => s.serialize_some("ldaps"),
            Some(_) => s.serialize_some("ldap"),
            None => s.serialize_none(),
        }
    }

    pub(in crate::pool_config) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SrvService>, D::Error> {
        let text = String::deserialize(d)?;
        match text.to_ascii_lowercase().as_str() {
            "ldap" => Ok(Some(SrvService::Ldap)),
            "ldaps" => Ok(Some(SrvService::Ldaps)),
            _ => Err(D::Error::custom(format!(
                "{text:?}: expected \"ldap\" or \"ldaps\""
            ))),
        }
    }
}
