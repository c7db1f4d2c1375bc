//! Framing the client's byte stream into LDAP messages.

use super::*;

/// Splits the client's byte stream into LDAP messages.
#[derive(Default)]
pub(super) struct Framer {
    pub(super) buf: Vec<u8>,
    /// The stream did not frame as LDAP: pass bytes on as they come.
    opaque: bool,
}

impl Framer {
    /// The next complete message and its kind, if any.
    pub(super) fn next(&mut self) -> Option<(Vec<u8>, RequestKind)> {
        if self.buf.is_empty() {
            return None;
        }
        if !self.opaque {
            match frame_len(&self.buf) {
                Framed::Complete(len) => {
                    let rest = self.buf.split_off(len);
                    let msg = std::mem::replace(&mut self.buf, rest);
                    let kind = message_kind(&msg);
                    return Some((msg, kind));
                }
                Framed::Incomplete => return None,
                Framed::NotLdap => self.opaque = true,
            }
        }
        Some((std::mem::take(&mut self.buf), RequestKind::Other))
    }
}

pub(super) enum Framed {
    Complete(usize),
    Incomplete,
    NotLdap,
}

/// The length of the BER `SEQUENCE` at the start of `buf`.
pub(super) fn frame_len(buf: &[u8]) -> Framed {
    if buf[0] != 0x30 {
        return Framed::NotLdap;
    }
    let Some(&first) = buf.get(1) else {
        return Framed::Incomplete;
    };
    let (header, len) = if first < 0x80 {
        (2, usize::from(first))
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return Framed::NotLdap; // indefinite or absurd length
        }
        let Some(bytes) = buf.get(2..2 + n) else {
            return Framed::Incomplete;
        };
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (2 + n, len)
    };
    if len > MAX_FRAME {
        return Framed::NotLdap;
    }
    if buf.len() < header + len {
        Framed::Incomplete
    } else {
        Framed::Complete(header + len)
    }
}

/// The protocol operation of a complete LDAP message: after the header and
/// the message id (an INTEGER).
pub(super) fn message_kind(msg: &[u8]) -> RequestKind {
    let header = if msg[1] < 0x80 {
        2
    } else {
        2 + usize::from(msg[1] & 0x7f)
    };
    let body = &msg[header..];
    match body {
        [0x02, id_len, rest @ ..] if *id_len < 0x80 => rest
            .get(usize::from(*id_len))
            .map_or(RequestKind::Other, |tag| RequestKind::from_tag(*tag)),
        _ => RequestKind::Other,
    }
}

/// A request read from the client, not yet forwarded.
pub(super) struct Frame {
    pub(super) bytes: Vec<u8>,
    pub(super) kind: RequestKind,
    /// Triggers were already checked for it (a held request being released).
    pub(super) checked: bool,
}
