//! Typed ids. Each names one slot of one table and remembers which occupant of
//! that slot it was issued for, so an id kept after its object is gone is
//! detected as stale instead of silently naming the slot's next occupant.

use std::fmt;

macro_rules! slot_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name {
            pub(crate) slot: u32,
            pub(crate) incarnation: u32,
        }

        impl $name {
            /// The table slot (reused after the object is freed).
            pub fn slot(self) -> u32 {
                self.slot
            }
            /// How many times the slot was occupied before this object.
            pub fn incarnation(self) -> u32 {
                self.incarnation
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                if self.incarnation == 0 {
                    write!(f, concat!($prefix, "{}"), self.slot)
                } else {
                    write!(f, concat!($prefix, "{}.{}"), self.slot, self.incarnation)
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }

        impl crate::slab::SlabId for $name {
            fn new(slot: u32, incarnation: u32) -> Self {
                $name { slot, incarnation }
            }
            fn slot(self) -> u32 {
                self.slot
            }
            fn incarnation(self) -> u32 {
                self.incarnation
            }
        }
    };
}

slot_id!(
    /// One operation (or one getent enumeration) asking for a connection: the
    /// seed's `conn_user`. Issued by [`Pool::handle_acquire`](crate::Pool::handle_acquire).
    UserId,
    "u"
);
slot_id!(
    /// One LDAP connection, shared or private: the seed's `conn_mt`.
    ConnId,
    "c"
);
slot_id!(
    /// One generation of the pool, i.e. one configuration in force: the seed's `conn_mgmt`.
    GenId,
    "g"
);

/// A server in the pool's server table. Servers are interned by address and
/// never removed, so a `ServerId` stays valid for the pool's life.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerId(pub(crate) u16);

impl ServerId {
    /// Position in the server table (order of first appearance).
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl fmt::Debug for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0)
    }
}

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// An opaque key naming the credential a connection is bound with.
///
/// The core never sees secrets: the adapter keeps a table from key to bind DN
/// and password and gives the core only the key. Two users share a connection
/// only if their keys are equal, so an adapter must give distinct credentials
/// distinct keys. [`CredKey::ANONYMOUS`] is the unauthenticated bind.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct CredKey(pub u64);

impl CredKey {
    /// Anonymous (no bind).
    pub const ANONYMOUS: CredKey = CredKey(0);
}

impl fmt::Debug for CredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == CredKey::ANONYMOUS {
            write!(f, "anon")
        } else {
            write!(f, "k{}", self.0)
        }
    }
}

impl fmt::Display for CredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
