//! The server table: every server ever configured or named, by
//! [`ServerId`], with its health and the connections and users on it.
//!
//! Only shared references to a [`Server`] leave this table: its health is
//! changed through [`Servers::set_health`] and [`Servers::health_mut`], its
//! counts through the `*_added` / `*_removed` pairs, which the pool calls
//! wherever a connection or an attached user comes or goes.

use crate::server::HealthState;
use crate::{Error, ServerId};

/// One server.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Server {
    pub(crate) addr: String,
    pub(crate) health: HealthState,
    /// Live connections to this server, all generations and purposes.
    pub(crate) conns: u32,
    /// Users attached to connections to this server.
    pub(crate) users: u32,
}

/// The servers, indexed by [`ServerId::index`]; a server is never removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Servers {
    list: Vec<Server>,
}

impl Servers {
    /// The id of the server with address `addr` (case-insensitive).
    pub(crate) fn find(&self, addr: &str) -> Option<ServerId> {
        self.list
            .iter()
            .position(|s| s.addr.eq_ignore_ascii_case(addr))
            .and_then(|i| u16::try_from(i).ok())
            .map(ServerId)
    }

    /// The id of `addr`, added (up and trusted) if new; `true` if it was.
    pub(crate) fn intern(&mut self, addr: &str) -> Result<(ServerId, bool), Error> {
        if let Some(id) = self.find(addr) {
            return Ok((id, false));
        }
        let idx = u16::try_from(self.list.len()).map_err(|_| Error::ServerTableFull)?;
        self.list.push(Server {
            addr: addr.to_string(),
            health: HealthState::STABLE,
            conns: 0,
            users: 0,
        });
        Ok((ServerId(idx), true))
    }

    pub(crate) fn get(&self, id: ServerId) -> Option<&Server> {
        self.list.get(id.index())
    }

    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// Every server, in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (ServerId, &Server)> {
        self.list
            .iter()
            .enumerate()
            .map(|(i, s)| (ServerId(i as u16), s))
    }

    /// The health of known server `id`.
    pub(crate) fn health(&self, id: ServerId) -> &HealthState {
        &self.list[id.index()].health
    }

    /// The health of known server `id`, to update in place.
    pub(crate) fn health_mut(&mut self, id: ServerId) -> &mut HealthState {
        &mut self.list[id.index()].health
    }

    pub(crate) fn set_health(&mut self, id: ServerId, health: HealthState) {
        self.list[id.index()].health = health;
    }

    /// The address of known server `id`.
    pub(crate) fn addr(&self, id: ServerId) -> &str {
        &self.list[id.index()].addr
    }

    /// Live connections to known server `id`.
    pub(crate) fn conns(&self, id: ServerId) -> u32 {
        self.list[id.index()].conns
    }

    pub(crate) fn conn_added(&mut self, id: ServerId) {
        self.list[id.index()].conns += 1;
    }

    pub(crate) fn conn_removed(&mut self, id: ServerId) {
        self.list[id.index()].conns -= 1;
    }

    pub(crate) fn user_added(&mut self, id: ServerId) {
        self.list[id.index()].users += 1;
    }

    pub(crate) fn user_removed(&mut self, id: ServerId) {
        self.list[id.index()].users -= 1;
    }

    /// Every connection and user is gone (shutdown, fork); health is kept.
    pub(crate) fn forget_conns(&mut self) {
        for s in &mut self.list {
            s.conns = 0;
            s.users = 0;
        }
    }
}
