//! Free loopback ports for the test servers.

use std::io;
use std::net::{Ipv4Addr, TcpListener};

use crate::HarnessError;

/// Picks `n` distinct free loopback ports (all bound at once, then released).
pub(crate) fn free_ports(n: usize) -> Result<Vec<u16>, HarnessError> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<io::Result<Vec<_>>>()
        .map_err(|e| HarnessError::io("bind 127.0.0.1:0 to find a free port", e))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<io::Result<Vec<_>>>()
        .map_err(|e| HarnessError::io("local_addr of a probe listener", e))
}
