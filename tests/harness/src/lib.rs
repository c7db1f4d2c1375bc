//! Test harness for ldapmux: real OpenLDAP `slapd` servers on 127.0.0.1, a test CA,
//! slapd's own connection counts (monitor backend) and a fault-injecting TCP proxy;
//! also an MIT KDC ([`Kdc`]) and a Samba Active Directory domain controller
//! ([`SambaDc`], on an address of its own in 127.0.0.0/8).
//!
//! Everything listens on or connects to loopback only. Every wait is bounded and
//! fails with a message naming what it last saw.
//!
//! # Cleanup guarantees
//!
//! Each slapd runs under a tiny `/bin/sh` wrapper whose stdin is a pipe held only by
//! the test process. When that pipe closes — [`Slapd`] dropped, [`Slapd::kill`], a
//! panic unwinding, or the test binary itself SIGKILLed — the wrapper SIGKILLs slapd
//! and reaps it. The harness reaps the wrapper. Temp dirs are removed on drop; dirs
//! left by a SIGKILLed test process are removed by the next [`SlapdBuilder::start`].
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use ldapmux_harness::{FaultProxy, ProxyMode, Slapd};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let slapd = Slapd::builder().users(10).start()?;
//! let proxy = FaultProxy::start(slapd.addr()).await?;
//! // ... point the pool at proxy.url() ...
//! proxy.set_mode(ProxyMode::Blackhole);
//! slapd.wait_current_connections(0, Duration::from_secs(5)).await?;
//! # Ok(()) }
//! ```

mod ca;
pub mod dns;
mod ds389;
mod error;
mod kdc;
mod monitor;
mod ports;
mod probe;
mod process;
mod proxy;
mod samba;
mod slapd;
mod tempdir;

pub use ca::{ServerCert, TestCa};
pub use ds389::{DS389_ROOT_DN, DS389_ROOT_PW, DS389_SUFFIX, Ds389, NS_SLAPD_PATH};
pub use error::HarnessError;
pub use kdc::{KADMIN_LOCAL_PATH, KDB5_UTIL_PATH, KRB5KDC_PATH, Kdc, REALM, require_kdc};
pub use monitor::{MONITOR_TIMEOUT, MonitorConn, OpCounts};
pub use proxy::{
    Armed, FaultProxy, GARBAGE, NOTICE_OF_DISCONNECTION, ProxyConn, ProxyConnId, ProxyMode,
    RequestKind, RequestRecord,
};
pub use samba::{
    AD_ADMIN_DN, AD_ADMIN_PASSWORD, AD_BASE, AD_DOMAIN, AD_REALM, SAMBA_PATH, SAMBA_TOOL_PATH,
    SambaDc, require_samba,
};
pub use slapd::{
    FIRST_GID, FIRST_UID, GROUPS_BASE, PEOPLE_BASE, ROOT_DN, ROOT_PW, SCRATCH_BASE, SLAPADD_PATH,
    SLAPD_PATH, SUFFIX, Slapd, SlapdBuilder, process_alive, require_slapd,
};

#[cfg(test)]
mod tests {
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn public_types_are_send_and_sync() {
        assert_send_sync::<crate::Slapd>();
        assert_send_sync::<crate::FaultProxy>();
        assert_send_sync::<crate::TestCa>();
        assert_send_sync::<crate::SambaDc>();
        assert_send_sync::<crate::HarnessError>();
    }
}
