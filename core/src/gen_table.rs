//! The generation table: the live generations, which one is current, and the
//! reference counts that free a detached one (seed: the `ref_cnt` rule).
//!
//! Only shared references to a [`Generation`] leave this table, so its
//! counts change only here: +1 while current, +1 per user, +1 per
//! connection, freed when detached and at zero.

use std::sync::Arc;

use crate::slab::Slab;
use crate::state::Generation;
use crate::{Config, GenId, ServerId};

/// Who holds a reference to a generation.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Holder {
    /// The pool, while the generation is current.
    Current,
    /// A user of the generation.
    User,
    /// A connection of the generation.
    Conn,
}

/// Every live generation and the current one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Generations {
    slab: Slab<GenId, Generation>,
    /// `None` before the first and after shutdown.
    current: Option<GenId>,
}

impl Generations {
    /// The current generation's id.
    pub(crate) fn current(&self) -> Option<GenId> {
        self.current
    }

    /// The current generation.
    pub(crate) fn current_gen(&self) -> Option<&Generation> {
        self.current.and_then(|g| self.slab.get(g))
    }

    pub(crate) fn get(&self, id: GenId) -> Option<&Generation> {
        self.slab.get(id)
    }

    /// The configuration of generation `id`, if live.
    pub(crate) fn config(&self, id: GenId) -> Option<&Config> {
        self.slab.get(id).map(|g| &*g.config)
    }

    pub(crate) fn contains(&self, id: GenId) -> bool {
        self.slab.contains(id)
    }

    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (GenId, &Generation)> {
        self.slab.iter()
    }

    /// Makes a new current generation running `config`, trying `servers` in
    /// that order. The one current before, if live, is detached; it keeps its
    /// [`Holder::Current`] reference until the caller drops it, so that it
    /// cannot be freed while its users and connections move.
    pub(crate) fn start(&mut self, config: Arc<Config>, servers: Vec<ServerId>) -> GenId {
        let id = self.slab.insert(Generation {
            config,
            servers,
            detached: false,
            refs: 1,
            users: 0,
            conns: 0,
        });
        if let Some(old) = self.current.and_then(|g| self.slab.get_mut(g)) {
            old.detached = true;
        }
        self.current = Some(id);
        id
    }

    /// Adds one reference to generation `id`, held by `holder`.
    pub(crate) fn take_ref(&mut self, id: GenId, holder: Holder) {
        if let Some(g) = self.slab.get_mut(id) {
            g.refs += 1;
            match holder {
                Holder::User => g.users += 1,
                Holder::Conn => g.conns += 1,
                Holder::Current => {}
            }
        }
    }

    /// Drops one reference; a detached generation with none left is freed.
    pub(crate) fn drop_ref(&mut self, id: GenId, holder: Holder) {
        let Some(g) = self.slab.get_mut(id) else {
            return;
        };
        g.refs = g
            .refs
            .checked_sub(1)
            .expect("generation reference count underflow");
        match holder {
            Holder::User => g.users -= 1,
            Holder::Conn => g.conns -= 1,
            Holder::Current => {}
        }
        if g.refs == 0 && g.detached {
            self.slab.remove(id);
        }
    }

    /// Frees every generation; none is current (shutdown, fork).
    pub(crate) fn clear(&mut self) {
        self.slab.clear();
        self.current = None;
    }

    /// Adds a reference nobody holds to the current generation (a leak,
    /// planted by [`crate::Fault::SkipGenerationDecrement`]).
    #[cfg(feature = "fault-hooks")]
    pub(crate) fn leak_current(&mut self) -> bool {
        match self.current.and_then(|g| self.slab.get_mut(g)) {
            Some(g) => {
                g.refs += 1;
                true
            }
            None => false,
        }
    }
}
