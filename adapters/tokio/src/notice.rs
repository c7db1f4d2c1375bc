//! Unsolicited notifications (RFC 4511 §4.4): messages with ID 0 that a
//! server sends on its own. The one the RFC defines, the Notice of
//! Disconnection, says the server is about to close the connection (Active
//! Directory sends it past `MaxConnIdleTime` and on shutdown; OpenLDAP's
//! `lloadd` and 389 DS on some closes). ldap3 drops these (vendor/ldap3's
//! patch hands them over); the runtime reads them here and tells the core the
//! connection is going away (`Event::ConnClosing`), so its death is not taken
//! for a sign about the server.
//!
//! ```text
//! ExtendedResponse ::= [APPLICATION 24] SEQUENCE {
//!      COMPONENTS OF LDAPResult,
//!      responseName     [10] LDAPOID OPTIONAL,
//!      responseValue    [11] OCTET STRING OPTIONAL }
//! ```

use ldap3::asn1::{PL, StructureTag, Tag, TagClass};

/// The Notice of Disconnection's `responseName`.
pub(crate) const NOTICE_OF_DISCONNECTION: &str = "1.3.6.1.4.1.1466.20036";

/// An unsolicited notification, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Unsolicited {
    /// Its `responseName`, if it had one where the RFC puts it (Active
    /// Directory misplaces it: ldap3 drops it then).
    pub(crate) name: Option<String>,
    /// Its result code (`unavailable` (52), `protocolError` (2) or
    /// `strongerAuthRequired` (8) for a notice).
    pub(crate) rc: Option<u32>,
    /// Its diagnostic message.
    pub(crate) text: String,
}

impl Unsolicited {
    /// Reads an unsolicited message's protocol op; `None` if it is not an
    /// extended response.
    pub(crate) fn read(op: &Tag) -> Option<Unsolicited> {
        let Tag::StructureTag(StructureTag {
            class: TagClass::Application,
            id: 24,
            payload: PL::C(parts),
        }) = op
        else {
            return None;
        };
        let primitive = |t: &StructureTag| match &t.payload {
            PL::P(bytes) => Some(bytes.clone()),
            PL::C(_) => None,
        };
        let rc = parts
            .first()
            .and_then(primitive)
            .filter(|b| b.len() <= 4)
            .map(|b| b.iter().fold(0u32, |n, &d| (n << 8) | u32::from(d)));
        let text = parts
            .get(2)
            .and_then(primitive)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let name = parts
            .iter()
            .skip(3)
            .find(|t| t.class == TagClass::Context && t.id == 10)
            .and_then(primitive)
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        Some(Unsolicited { name, rc, text })
    }

    /// Whether it announces the connection's close: a Notice of
    /// Disconnection, or a nameless one (Active Directory's misencoded
    /// notice; the RFC defines no other).
    pub(crate) fn is_disconnection(&self) -> bool {
        self.name
            .as_deref()
            .is_none_or(|n| n == NOTICE_OF_DISCONNECTION)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prim(class: TagClass, id: u64, bytes: &[u8]) -> StructureTag {
        StructureTag {
            class,
            id,
            payload: PL::P(bytes.to_vec()),
        }
    }

    fn response(parts: Vec<StructureTag>) -> Tag {
        Tag::StructureTag(StructureTag {
            class: TagClass::Application,
            id: 24,
            payload: PL::C(parts),
        })
    }

    fn result(rc: u8, text: &str) -> Vec<StructureTag> {
        vec![
            prim(TagClass::Universal, 10, &[rc]),
            prim(TagClass::Universal, 4, b""),
            prim(TagClass::Universal, 4, text.as_bytes()),
        ]
    }

    #[test]
    fn a_notice_of_disconnection_is_read_with_its_code_and_text() {
        let mut parts = result(52, "idle timeout");
        parts.push(prim(
            TagClass::Context,
            10,
            NOTICE_OF_DISCONNECTION.as_bytes(),
        ));
        let n = Unsolicited::read(&response(parts)).expect("an extended response");
        assert_eq!(n.name.as_deref(), Some(NOTICE_OF_DISCONNECTION));
        assert_eq!(n.rc, Some(52));
        assert_eq!(n.text, "idle timeout");
        assert!(n.is_disconnection());
    }

    #[test]
    fn active_directorys_nameless_notice_is_a_disconnection() {
        let n = Unsolicited::read(&response(result(2, ""))).expect("read");
        assert_eq!(n.name, None);
        assert!(n.is_disconnection());
    }

    #[test]
    fn another_unsolicited_notification_is_not_a_disconnection() {
        let mut parts = result(0, "");
        parts.push(prim(TagClass::Context, 10, b"1.2.3.4"));
        let n = Unsolicited::read(&response(parts)).expect("read");
        assert!(!n.is_disconnection());
    }

    #[test]
    fn anything_but_an_extended_response_is_not_read() {
        let op = Tag::StructureTag(StructureTag {
            class: TagClass::Application,
            id: 5,
            payload: PL::C(result(0, "")),
        });
        assert_eq!(Unsolicited::read(&op), None);
        let garbled = response(vec![StructureTag {
            class: TagClass::Universal,
            id: 10,
            payload: PL::C(vec![]),
        }]);
        let n = Unsolicited::read(&garbled).expect("read, loosely");
        assert_eq!(n.rc, None);
    }
}
