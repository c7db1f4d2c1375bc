//! The configuration of one pool generation, with a builder and validation.

use std::time::Duration;

use crate::error::ConfigError;

/// Number of tries an operation gets in all (the seed's `NS_LIST_TRY_MAX`).
pub const MAX_TRIES: u8 = 3;

/// Default cap on users sharing one connection. OpenLDAP closes an anonymous
/// connection with more than 100 requests outstanding (`conn_max_pending`), so
/// the default stays well under it.
pub const DEFAULT_MAX_USERS_PER_CONN: u32 = 64;

/// Default [`Config::spread_users_per_conn`]: a shared connection with this
/// many users counts as busy, and a spare opens beside it. Chosen by the
/// benchmark's spread sweep (`docs/results/benchmarks.md`): against one
/// slapd, 2 users per connection up to 16 connections matched one connection
/// per task from 16 to 1 024 users in flight, on at most 1/4 of its
/// connections from 64 on.
pub const DEFAULT_SPREAD_USERS_PER_CONN: u32 = 2;

/// Default [`Config::spread_conns_per_server`]: how many connections of one
/// kind spreading opens on a server before users stack up to the cap. Half of
/// the default [`Config::max_conns_per_server`], so reads spread out never
/// take the slots writers, other credentials and password checks need.
pub const DEFAULT_SPREAD_CONNS_PER_SERVER: u32 = 16;

/// Default [`Config::max_conns_per_server`].
pub const DEFAULT_MAX_CONNS_PER_SERVER: u32 = 32;

/// Default [`Config::bind_conns_per_server`]: password checks from many
/// tasks reuse this many bind connections per server (lloadd keeps a set of
/// dedicated bind connections the same way), an eighth of the default
/// [`Config::max_conns_per_server`]. Checks beyond it wait for a free one,
/// which is one round trip away rather than a TCP (and TLS) handshake.
pub const DEFAULT_BIND_CONNS_PER_SERVER: u32 = 4;

/// Default [`Config::connect_race_delay`].
pub const DEFAULT_CONNECT_RACE_DELAY: Duration = Duration::from_millis(200);

/// Whether users share connections (the seed's conn_mgmt `ACTIVE` vs `INACTIVE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Sharing {
    /// Every non-AUTH, non-private user shares (seed state `ACTIVE`, as in nscd).
    #[default]
    Always,
    /// Only users that ask to keep a connection share; others get a private one
    /// that is closed when they finish (seed state `INACTIVE`).
    OnRequest,
}

/// One server of the configuration.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServerConfig {
    /// The address the adapter connects to, e.g. `ldap://127.0.0.1:3890`.
    /// Compared case-insensitively, as the seed does.
    pub addr: String,
    /// Position in the preferred-server list, `None` if not preferred.
    /// Preferred servers are chosen first, lowest rank first; the others follow
    /// in configuration order.
    pub preference: Option<u16>,
}

/// Pool configuration. Build it with [`Config::builder`]; every field has a
/// default a demanding user would pick.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Config {
    /// Servers in configuration order.
    pub servers: Vec<ServerConfig>,
    /// Users per shared connection (behaviour 4).
    pub max_users_per_conn: u32,
    /// Connections per server, all purposes and generations together. Users
    /// beyond it wait in FIFO order until their deadline.
    pub max_conns_per_server: u32,
    /// Spread before stack: a shared connection with this many users is
    /// busy. A user who finds every matching connection busy gets a further
    /// connection to the same server opened (it rides an open one meanwhile)
    /// while fewer than [`Config::spread_conns_per_server`] match; beyond
    /// that, users stack up to [`Config::max_users_per_conn`]. At or above
    /// `max_users_per_conn`, connections fill up before another opens.
    pub spread_users_per_conn: u32,
    /// How many matching connections (same generation, server, credential,
    /// purpose) spreading opens on one server. 1 turns spreading off.
    pub spread_conns_per_server: u32,
    /// Bind connections ([`Purpose::Bind`](crate::Purpose::Bind)) per server
    /// and generation: the password checks' own connections, each used by
    /// one check at a time and re-bound by it. 0 turns them off: every check
    /// opens a private connection and closes it after (as nslcd and SSSD do).
    pub bind_conns_per_server: u32,
    /// Whether users share connections.
    pub sharing: Sharing,
    /// How long an opening connection may take before it counts as failed.
    pub connect_timeout: Duration,
    /// Connect racing (RFC 8305's idea, applied to the server list): a shared
    /// connection with waiters that has not opened after this long gets a
    /// rival opening to the next usable server; whichever opens first takes
    /// the waiters of both. The preference order still holds for what follows
    /// (fail-back as usual). `None`: wait for the connect timeout.
    pub connect_race_delay: Option<Duration>,
    /// Idle write connections are closed after this (behaviour 5; seed: 60 s),
    /// and so are idle bind connections (still bound as the last user they
    /// checked).
    pub write_idle_timeout: Duration,
    /// Idle read connections are closed after this, if set.
    pub read_idle_timeout: Option<Duration>,
    /// Connections are drained once they are this old, if set.
    pub max_conn_age: Option<Duration>,
    /// A connection whose credential expires
    /// ([`Event::ConnExpires`](crate::Event::ConnExpires): a Kerberos
    /// ticket's end) takes no new users from this long before, or a tenth of
    /// the ticket's time left if that is less (SSSD shortens its
    /// connections' lifetime to the ticket's the same way): long enough for
    /// an operation started just before to finish.
    pub credential_expiry_margin: Duration,
    /// A server that came back must stay up this long before connections fail
    /// back to it (behaviour 7, hysteresis).
    pub failback_hold_down: Duration,
    /// First delay before probing a server that went down (behaviour 13).
    pub probe_backoff_min: Duration,
    /// Longest delay between probes of a server that stays down.
    pub probe_backoff_max: Duration,
    /// Deadline for a waiting user that gives none.
    pub default_acquire_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            servers: Vec::new(),
            max_users_per_conn: DEFAULT_MAX_USERS_PER_CONN,
            max_conns_per_server: DEFAULT_MAX_CONNS_PER_SERVER,
            spread_users_per_conn: DEFAULT_SPREAD_USERS_PER_CONN,
            spread_conns_per_server: DEFAULT_SPREAD_CONNS_PER_SERVER,
            bind_conns_per_server: DEFAULT_BIND_CONNS_PER_SERVER,
            sharing: Sharing::Always,
            connect_timeout: Duration::from_secs(5),
            connect_race_delay: Some(DEFAULT_CONNECT_RACE_DELAY),
            write_idle_timeout: Duration::from_secs(60),
            read_idle_timeout: Some(Duration::from_secs(300)),
            max_conn_age: None,
            credential_expiry_margin: Duration::from_secs(60),
            failback_hold_down: Duration::from_secs(30),
            probe_backoff_min: Duration::from_secs(1),
            probe_backoff_max: Duration::from_secs(60),
            default_acquire_timeout: Duration::from_secs(30),
        }
    }
}

impl Config {
    /// A builder starting from the defaults.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder(Config::default())
    }

    /// Checks the configuration, naming the first problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.servers.is_empty() {
            return Err(ConfigError::NoServers);
        }
        if self.servers.len() > usize::from(u16::MAX) {
            return Err(ConfigError::TooManyServers);
        }
        // Linear, so a long server list is checked as fast as a short one.
        let mut seen = std::collections::HashSet::with_capacity(self.servers.len());
        for (i, s) in self.servers.iter().enumerate() {
            if s.addr.trim().is_empty() {
                return Err(ConfigError::EmptyServerAddress { index: i });
            }
            if !seen.insert(s.addr.to_ascii_lowercase()) {
                return Err(ConfigError::DuplicateServer {
                    addr: s.addr.clone(),
                });
            }
        }
        self.validate_settings()
    }

    /// [`validate`](Self::validate) without the server list: every limit
    /// and duration. For an adapter that checks a configuration before its
    /// servers are known (found in DNS, or given by a later file).
    pub fn validate_settings(&self) -> Result<(), ConfigError> {
        if self.max_users_per_conn == 0 {
            return Err(ConfigError::ZeroLimit {
                field: "max_users_per_conn",
            });
        }
        if self.max_conns_per_server == 0 {
            return Err(ConfigError::ZeroLimit {
                field: "max_conns_per_server",
            });
        }
        for (field, n) in [
            ("spread_users_per_conn", self.spread_users_per_conn),
            ("spread_conns_per_server", self.spread_conns_per_server),
        ] {
            if n == 0 {
                return Err(ConfigError::ZeroLimit { field });
            }
        }
        if self.connect_race_delay.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::ZeroDuration {
                field: "connect_race_delay",
            });
        }
        for (field, d) in [
            ("connect_timeout", self.connect_timeout),
            ("probe_backoff_min", self.probe_backoff_min),
            ("default_acquire_timeout", self.default_acquire_timeout),
        ] {
            if d.is_zero() {
                return Err(ConfigError::ZeroDuration { field });
            }
        }
        if self.probe_backoff_max < self.probe_backoff_min {
            return Err(ConfigError::BackoffRange);
        }
        Ok(())
    }
}

/// Builds a [`Config`]. Servers are added in order; `preferred_server` adds a
/// server to the end of the preferred list.
#[derive(Clone, Debug)]
pub struct ConfigBuilder(Config);

impl ConfigBuilder {
    /// Adds a server that is not preferred.
    pub fn server(mut self, addr: impl Into<String>) -> Self {
        self.0.servers.push(ServerConfig {
            addr: addr.into(),
            preference: None,
        });
        self
    }
    /// Adds a server at the end of the preferred list.
    pub fn preferred_server(mut self, addr: impl Into<String>) -> Self {
        let next = self
            .0
            .servers
            .iter()
            .filter(|s| s.preference.is_some())
            .count();
        let preference = u16::try_from(next).ok();
        self.0.servers.push(ServerConfig {
            addr: addr.into(),
            preference,
        });
        self
    }
    /// Sets [`Config::max_users_per_conn`].
    pub fn max_users_per_conn(mut self, n: u32) -> Self {
        self.0.max_users_per_conn = n;
        self
    }
    /// Sets [`Config::max_conns_per_server`].
    pub fn max_conns_per_server(mut self, n: u32) -> Self {
        self.0.max_conns_per_server = n;
        self
    }
    /// Sets [`Config::spread_users_per_conn`] and
    /// [`Config::spread_conns_per_server`].
    pub fn spread(mut self, users_per_conn: u32, conns_per_server: u32) -> Self {
        self.0.spread_users_per_conn = users_per_conn;
        self.0.spread_conns_per_server = conns_per_server;
        self
    }
    /// Sets [`Config::bind_conns_per_server`] (0: a private connection per
    /// password check).
    pub fn bind_conns_per_server(mut self, n: u32) -> Self {
        self.0.bind_conns_per_server = n;
        self
    }
    /// Sets [`Config::connect_race_delay`].
    pub fn connect_race_delay(mut self, d: Option<Duration>) -> Self {
        self.0.connect_race_delay = d;
        self
    }
    /// Sets [`Config::sharing`].
    pub fn sharing(mut self, sharing: Sharing) -> Self {
        self.0.sharing = sharing;
        self
    }
    /// Sets [`Config::connect_timeout`].
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.0.connect_timeout = d;
        self
    }
    /// Sets [`Config::write_idle_timeout`].
    pub fn write_idle_timeout(mut self, d: Duration) -> Self {
        self.0.write_idle_timeout = d;
        self
    }
    /// Sets [`Config::read_idle_timeout`].
    pub fn read_idle_timeout(mut self, d: Option<Duration>) -> Self {
        self.0.read_idle_timeout = d;
        self
    }
    /// Sets [`Config::max_conn_age`].
    pub fn max_conn_age(mut self, d: Option<Duration>) -> Self {
        self.0.max_conn_age = d;
        self
    }
    /// Sets [`Config::credential_expiry_margin`].
    pub fn credential_expiry_margin(mut self, d: Duration) -> Self {
        self.0.credential_expiry_margin = d;
        self
    }
    /// Sets [`Config::failback_hold_down`].
    pub fn failback_hold_down(mut self, d: Duration) -> Self {
        self.0.failback_hold_down = d;
        self
    }
    /// Sets [`Config::probe_backoff_min`] and [`Config::probe_backoff_max`].
    pub fn probe_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.0.probe_backoff_min = min;
        self.0.probe_backoff_max = max;
        self
    }
    /// Sets [`Config::default_acquire_timeout`].
    pub fn default_acquire_timeout(mut self, d: Duration) -> Self {
        self.0.default_acquire_timeout = d;
        self
    }
    /// Validates and returns the configuration.
    pub fn build(self) -> Result<Config, ConfigError> {
        self.0.validate()?;
        Ok(self.0)
    }
}
