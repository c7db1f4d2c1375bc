//! A blocking, dependency-free readiness probe: one LDAP search over a plain
//! `std::net::TcpStream`, hand-encoded in BER.
//!
//! It is synchronous so that `Slapd::start` works both inside and outside a tokio
//! runtime, and it checks more than "the port is open": the base search of the
//! suffix only succeeds once the mdb database is open.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

const TAG_SEQUENCE: u8 = 0x30;
const TAG_INTEGER: u8 = 0x02;
const TAG_OCTETS: u8 = 0x04;
const TAG_ENUM: u8 = 0x0a;
const TAG_BOOL: u8 = 0x01;
const TAG_SEARCH_REQUEST: u8 = 0x63;
const TAG_SEARCH_DONE: u8 = 0x65;
const TAG_FILTER_PRESENT: u8 = 0x87;
const TAG_UNBIND: u8 = 0x42;

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    push_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

/// `SearchRequest` for `base` with scope base, filter `(objectClass=*)`, attributes `1.1`.
pub(crate) fn search_request(msgid: u8, base: &str) -> Vec<u8> {
    let body = [
        tlv(TAG_OCTETS, base.as_bytes()),
        tlv(TAG_ENUM, &[0]),    // scope baseObject
        tlv(TAG_ENUM, &[0]),    // derefAliases never
        tlv(TAG_INTEGER, &[0]), // sizeLimit
        tlv(TAG_INTEGER, &[0]), // timeLimit
        tlv(TAG_BOOL, &[0]),    // typesOnly false
        tlv(TAG_FILTER_PRESENT, b"objectClass"),
        tlv(TAG_SEQUENCE, &tlv(TAG_OCTETS, b"1.1")),
    ]
    .concat();
    let msg = [tlv(TAG_INTEGER, &[msgid]), tlv(TAG_SEARCH_REQUEST, &body)].concat();
    tlv(TAG_SEQUENCE, &msg)
}

fn unbind_request(msgid: u8) -> Vec<u8> {
    let msg = [tlv(TAG_INTEGER, &[msgid]), tlv(TAG_UNBIND, &[])].concat();
    tlv(TAG_SEQUENCE, &msg)
}

/// Parses one TLV at the start of `buf`: `(tag, content, total length)`, or `None`
/// when `buf` does not hold a complete element yet. Errors on malformed lengths.
pub(crate) fn parse_tlv(buf: &[u8]) -> io::Result<Option<(u8, &[u8], usize)>> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let tag = buf[0];
    let first = buf[1];
    let (len, header) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unsupported BER length form 0x{first:02x}"),
            ));
        }
        if buf.len() < 2 + n {
            return Ok(None);
        }
        let len = buf[2..2 + n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, 2 + n)
    };
    if buf.len() < header + len {
        return Ok(None);
    }
    Ok(Some((tag, &buf[header..header + len], header + len)))
}

/// Looks at one complete LDAPMessage: returns `Some(result code)` if it is a
/// `SearchResultDone`, `None` for any other protocol op.
fn search_done_code(message: &[u8]) -> io::Result<Option<u32>> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let (_, _, id_len) = parse_tlv(message)?.ok_or_else(|| bad("truncated message id"))?;
    let (op_tag, op, _) = parse_tlv(&message[id_len..])?.ok_or_else(|| bad("truncated op"))?;
    if op_tag != TAG_SEARCH_DONE {
        return Ok(None);
    }
    let (tag, code, _) = parse_tlv(op)?.ok_or_else(|| bad("truncated result code"))?;
    if tag != TAG_ENUM || code.is_empty() || code.len() > 4 {
        return Err(bad("malformed result code"));
    }
    Ok(Some(
        code.iter().fold(0u32, |acc, b| (acc << 8) | *b as u32),
    ))
}

/// Connects to `addr`, searches `base` (scope base) anonymously and waits for the
/// `SearchResultDone`. `Ok` only if the result code is success. Sends an unbind and
/// waits for the server to close the connection (so the probe does not linger in
/// slapd's connection count). Every blocking call is bounded by `timeout`.
pub(crate) fn probe_search(addr: SocketAddr, base: &str, timeout: Duration) -> io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(&search_request(1, base))?;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    let code = 'outer: loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "server closed the connection before answering the probe search",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Some((tag, content, total)) = parse_tlv(&buf)? {
            if tag != TAG_SEQUENCE {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("not an LDAPMessage (tag 0x{tag:02x})"),
                ));
            }
            if let Some(code) = search_done_code(content)? {
                break 'outer code;
            }
            buf.drain(..total);
        }
    };
    stream.write_all(&unbind_request(2))?;
    // Wait for slapd to close its side; bounded by the read timeout.
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
    if code == 0 {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "probe search of {base} returned LDAP result code {code}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_request_matches_hand_encoding() {
        let req = search_request(1, "dc=a");
        let expected: Vec<u8> = vec![
            0x30, 0x2e, // LDAPMessage
            0x02, 0x01, 0x01, // messageID 1
            0x63, 0x29, // SearchRequest
            0x04, 0x04, b'd', b'c', b'=', b'a', // baseObject
            0x0a, 0x01, 0x00, // scope
            0x0a, 0x01, 0x00, // deref
            0x02, 0x01, 0x00, // sizeLimit
            0x02, 0x01, 0x00, // timeLimit
            0x01, 0x01, 0x00, // typesOnly
            0x87, 0x0b, b'o', b'b', b'j', b'e', b'c', b't', b'C', b'l', b'a', b's', b's', 0x30,
            0x05, 0x04, 0x03, b'1', b'.', b'1',
        ];
        assert_eq!(req, expected);
    }

    #[test]
    fn long_lengths_round_trip() {
        let content = vec![7u8; 300];
        let enc = tlv(0x04, &content);
        assert_eq!(&enc[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let (tag, got, total) = parse_tlv(&enc).unwrap().unwrap();
        assert_eq!((tag, got.len(), total), (0x04, 300, enc.len()));
        assert!(parse_tlv(&enc[..enc.len() - 1]).unwrap().is_none());
        assert!(parse_tlv(&enc[..3]).unwrap().is_none());
    }

    #[test]
    fn search_done_result_code_is_read() {
        // SearchResultDone, msgid 1, resultCode 32 (noSuchObject), "" "".
        let msg = [
            0x02, 0x01, 0x01, 0x65, 0x07, 0x0a, 0x01, 0x20, 0x04, 0x00, 0x04, 0x00,
        ];
        assert_eq!(search_done_code(&msg).unwrap(), Some(32));
        // SearchResultEntry is not a done message.
        let entry = [0x02, 0x01, 0x01, 0x64, 0x02, 0x04, 0x00];
        assert_eq!(search_done_code(&entry).unwrap(), None);
    }
}
