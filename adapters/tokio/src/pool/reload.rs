//! Reloads: a new generation from a new configuration (behaviour 11), by
//! hand or from a source of servers (DNS SRV discovery).

use super::Pool;
use crate::{BuildError, PoolBuilder};

impl Pool {
    /// Starts a new generation with a new configuration (behaviour 11):
    /// running operations finish on their connections, which close when
    /// their last user leaves; new operations use the new settings. An
    /// invalid configuration is refused and the old one keeps serving.
    ///
    /// A pool built with [`SrvPoolBuilder::build`](crate::SrvPoolBuilder::build) takes a builder
    /// with the same DNS SRV settings and no servers: it applies to the
    /// servers of the current answer and to every later one.
    ///
    /// ```no_run
    /// # async fn f(pool: ldapmux::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// pool.reload(ldapmux::Pool::builder().server("ldap://127.0.0.1:3893"))?;
    /// # Ok(()) }
    /// ```
    pub fn reload(&self, builder: PoolBuilder) -> Result<(), BuildError> {
        self.reload_from(builder, false)
    }

    /// A reload for a changed server list (DNS SRV discovery): like
    /// [`Pool::reload`], but when nothing but the servers changed (same
    /// credential, TLS options, StartTLS, multiplexing and core settings),
    /// open and opening connections to servers still listed move to the new
    /// generation, with their users, instead of draining. Connections to
    /// servers no longer listed drain as in any reload.
    ///
    /// ```no_run
    /// # async fn f(pool: ldapmux::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// pool.reload_keeping_servers(
    ///     ldapmux::Pool::builder().server("ldap://127.0.0.1:3891").server("ldap://127.0.0.1:3893"),
    /// )?;
    /// # Ok(()) }
    /// ```
    pub fn reload_keeping_servers(&self, builder: PoolBuilder) -> Result<(), BuildError> {
        self.reload_from(builder, true)
    }

    /// A reload by hand: through the discovery of a pool that follows DNS.
    fn reload_from(&self, builder: PoolBuilder, keep_listed: bool) -> Result<(), BuildError> {
        match self.inner.discovery.get() {
            Some(source) => source.reload(self, builder, keep_listed),
            None if builder.config().dns_srv.is_some() => Err(BuildError::InvalidField {
                field: "dns_srv",
                reason: "this pool has fixed servers: a pool that follows DNS SRV \
                         is built with PoolBuilder::dns_srv(..).build().await"
                    .into(),
            }),
            None => self.reload_with(builder, keep_listed),
        }
    }

    /// Starts the new generation with `builder`'s servers.
    pub(crate) fn reload_with(
        &self,
        builder: PoolBuilder,
        keep_listed: bool,
    ) -> Result<(), BuildError> {
        let settings = builder.settings()?;
        let keep_listed = keep_listed
            && self
                .inner
                .shared
                .settings()
                .connects_like(&settings, &self.inner.shared.creds);
        let core = settings.core.clone();
        self.inner.shared.set_settings(settings);
        let reloaded = if keep_listed {
            self.inner.driver.reload_servers(core)
        } else {
            self.inner.driver.reload(core)
        };
        reloaded.map_err(|e| match e {
            ldapmux_core::Error::Config(c) => BuildError::Core(c),
            other => BuildError::InvalidField {
                field: "reload",
                reason: other.to_string(),
            },
        })?;
        tracing::info!(keep_listed, "configuration reloaded: new generation");
        self.inner.shared.publish_metrics();
        Ok(())
    }
}
