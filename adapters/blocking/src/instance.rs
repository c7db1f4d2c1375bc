//! [`Instance`]: one async pool and the runtime that drives it, owned by
//! the process that built them (the fork check compares process ids).

use ldapmux::{BuildError, PoolBuilder};

/// One pool and the runtime that drives it, in the process that built them.
pub(crate) struct Instance {
    pub(crate) pid: u32,
    runtime: tokio::runtime::Runtime,
    pub(crate) pool: ldapmux::Pool,
}

impl Instance {
    /// Starts a runtime with one I/O thread and the pool on it; a builder
    /// that follows DNS SRV is looked up first
    /// ([`ldapmux::SrvPoolBuilder::build`]).
    pub(crate) fn build(builder: &PoolBuilder) -> Result<Instance, BuildError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ldapmux-io")
            .enable_all()
            .build()
            .map_err(|e| BuildError::InvalidField {
                field: "runtime",
                reason: e.to_string(),
            })?;
        let builder = builder.clone().runtime(runtime.handle().clone());
        #[cfg(feature = "dns-srv")]
        let pool = match builder.into_dns_srv() {
            Ok(srv) => runtime.block_on(srv.build())?,
            Err(listed) => listed.build()?,
        };
        #[cfg(not(feature = "dns-srv"))]
        let pool = builder.build()?;
        Ok(Instance {
            pid: std::process::id(),
            runtime,
            pool,
        })
    }

    /// Whether this instance belongs to another process (the parent before
    /// a fork): nothing of it may be touched here.
    pub(crate) fn forked(&self) -> bool {
        self.pid != std::process::id()
    }

    /// Runs `f` to completion on the calling thread (the I/O thread drives
    /// the sockets meanwhile).
    pub(crate) fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.handle().block_on(f)
    }
}
