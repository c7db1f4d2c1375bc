//! What the proxy does to a connection ([`ProxyMode`]) and the requests it
//! tells apart ([`RequestKind`]).

use super::*;

/// What [`ProxyMode::Garbage`] sends: an HTTP error, which an LDAP client's BER
/// decoder rejects as soon as it has read it (a complete element that is not a
/// `SEQUENCE`).
pub const GARBAGE: &[u8] = b"HTTP/1.1 400 Bad Request\r\nServer: not-an-ldap-server\r\n\
Content-Type: text/plain\r\nContent-Length: 26\r\n\r\nthis is not an LDAP server";

/// What the proxy does with a connection's traffic; see the [`FaultProxy`] docs
/// for the effect of each mode set now and at a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ProxyMode {
    /// Pass bytes both ways unchanged (and release held requests).
    #[default]
    Forward,
    /// Read and discard what the client sends, never answer: the client sees a
    /// server that hangs with TCP up. New connections are not even forwarded to
    /// the server; data the server sends on existing ones is discarded.
    Blackhole,
    /// One shot, for [`FaultProxy::set_mode`]: the next request any client sends is
    /// forwarded to the server; the proxy waits for the server's answer (up to 5 s),
    /// discards it and resets the client (RST). So the client sees its request
    /// fail while the server has done the work: the "unknown outcome" case. Then
    /// the mode is back to `Forward`. Given to [`FaultProxy::set_conn_mode`], the
    /// same for that connection's next request.
    CutAfterRequest,
    /// Reset (RST): new connections are reset at accept; existing connections are
    /// reset when this mode is set.
    Refuse,
    /// Orderly close (FIN) of the client side: new connections are closed at
    /// accept; existing ones when this mode is set. The server side is closed too.
    Close,
    /// Stop reading from the client while TCP stays up: its requests are held
    /// (never forwarded) and, past 64 KiB, its writes back up. Server bytes still
    /// reach the client. Setting another mode releases the held requests to it.
    StallReads,
    /// Stop reading from the server while TCP stays up: its answers back
    /// up in the sockets until its own writes block (a client that does not
    /// read). Requests are still forwarded. Setting another mode reads on.
    StallServer,
    /// Forward server→client bytes one byte per interval (a slow-loris server).
    Drip(Duration),
    /// Send [`GARBAGE`] (non-LDAP bytes) to the client: at once when set, or in
    /// place of the answer to the request it takes effect at. Forward otherwise.
    Garbage,
    /// Hold each server→client chunk for this long before forwarding it.
    Delay(Duration),
    /// Send [`NOTICE_OF_DISCONNECTION`] to the client, then close (FIN) both
    /// sides, as a server that announces its close (Active Directory past
    /// `MaxConnIdleTime`): at once when set (at accept for a new
    /// connection), or in place of forwarding the request it takes effect at.
    Notice,
}

/// What [`ProxyMode::Notice`] sends: an LDAP Notice of Disconnection (RFC
/// 4511 §4.4.1), message ID 0, `unavailable` (52), "closing".
pub const NOTICE_OF_DISCONNECTION: &[u8] = &[
    0x30, 0x2b, // LDAPMessage
    0x02, 0x01, 0x00, // messageID 0
    0x78, 0x26, // [APPLICATION 24] ExtendedResponse
    0x0a, 0x01, 0x34, // resultCode unavailable (52)
    0x04, 0x00, // matchedDN ""
    0x04, 0x07, b'c', b'l', b'o', b's', b'i', b'n', b'g', // diagnosticMessage
    0x8a, 0x16, // [10] responseName
    b'1', b'.', b'3', b'.', b'6', b'.', b'1', b'.', b'4', b'.', b'1', b'.', b'1', b'4', b'6', b'6',
    b'.', b'2', b'0', b'0', b'3', b'6',
];

impl ProxyMode {
    /// `Refuse` under the name of what it does.
    pub const RESET: ProxyMode = ProxyMode::Refuse;
}

/// The protocol operation of an LDAP request (RFC 4511 §4.2–4.12), as framed by
/// the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RequestKind {
    /// BindRequest `[APPLICATION 0]`.
    Bind,
    /// UnbindRequest `[APPLICATION 2]`.
    Unbind,
    /// SearchRequest `[APPLICATION 3]`.
    Search,
    /// ModifyRequest `[APPLICATION 6]`.
    Modify,
    /// AddRequest `[APPLICATION 8]`.
    Add,
    /// DelRequest `[APPLICATION 10]`.
    Delete,
    /// ModifyDNRequest `[APPLICATION 12]`.
    ModifyDn,
    /// CompareRequest `[APPLICATION 14]`.
    Compare,
    /// AbandonRequest `[APPLICATION 16]`.
    Abandon,
    /// ExtendedRequest `[APPLICATION 23]`.
    Extended,
    /// Anything else, including bytes that do not frame as LDAP.
    Other,
}

impl RequestKind {
    pub(super) fn from_tag(tag: u8) -> RequestKind {
        match tag {
            0x60 => RequestKind::Bind,
            0x42 => RequestKind::Unbind,
            0x63 => RequestKind::Search,
            0x66 => RequestKind::Modify,
            0x68 => RequestKind::Add,
            0x4a => RequestKind::Delete,
            0x6c => RequestKind::ModifyDn,
            0x6e => RequestKind::Compare,
            0x50 => RequestKind::Abandon,
            0x77 => RequestKind::Extended,
            _ => RequestKind::Other,
        }
    }
}

/// Whether `kind` matches the request matcher `want` (`None`: any request).
pub(super) fn request_matches(want: Option<RequestKind>, kind: RequestKind) -> bool {
    want.is_none_or(|w| w == kind)
}
