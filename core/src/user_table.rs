//! The user table: every live user, and the queue of those waiting for a
//! connection slot, in arrival order.
//!
//! Only shared references to a [`User`] leave this table; its state moves
//! through the named methods below. A user removed from the table leaves
//! the queue with it.

use std::collections::VecDeque;

use crate::slab::Slab;
use crate::state::{User, UserState};
use crate::{ConnId, GenId, Instant, Sharing, UserId, UserKind};

/// The live users and the queue.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Users {
    slab: Slab<UserId, User>,
    /// Users waiting for a connection slot, in arrival order.
    queue: VecDeque<UserId>,
}

impl Users {
    pub(crate) fn insert(&mut self, user: User) -> UserId {
        self.slab.insert(user)
    }

    pub(crate) fn get(&self, id: UserId) -> Option<&User> {
        self.slab.get(id)
    }

    pub(crate) fn contains(&self, id: UserId) -> bool {
        self.slab.contains(id)
    }

    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (UserId, &User)> {
        self.slab.iter()
    }

    /// Removes `id`, and its queue entry if it is queued.
    pub(crate) fn remove(&mut self, id: UserId) -> Option<User> {
        let user = self.slab.remove(id)?;
        if user.state == UserState::Queued
            && let Some(pos) = self.queue.iter().position(|&u| u == id)
        {
            self.queue.remove(pos);
        }
        Some(user)
    }

    fn get_mut(&mut self, id: UserId) -> &mut User {
        self.slab.get_mut(id).expect("user exists")
    }

    /// Marks `id` unplaced (state `Queued`, not in the queue) for the
    /// caller to place again, if it is live.
    pub(crate) fn unplace(&mut self, id: UserId) {
        if let Some(u) = self.slab.get_mut(id) {
            u.state = UserState::Queued;
        }
    }

    /// Queues `id` behind the others; returns its deadline.
    pub(crate) fn enqueue(&mut self, id: UserId) -> Instant {
        let user = self.get_mut(id);
        user.state = UserState::Queued;
        let deadline = user.deadline;
        self.queue.push_back(id);
        deadline
    }

    /// `id` waits for connection `conn` to open, if it is live.
    pub(crate) fn set_waiting(&mut self, id: UserId, conn: ConnId) {
        if let Some(u) = self.slab.get_mut(id) {
            u.state = UserState::Waiting { conn };
        }
    }

    /// `id` is handed `conn`; returns its deadline (no longer due).
    pub(crate) fn connect(&mut self, id: UserId, conn: ConnId) -> Instant {
        let user = self.get_mut(id);
        user.state = UserState::Connected {
            conn,
            enumerating: false,
        };
        user.deadline
    }

    /// Connected `id` asked for a next entry: it is never retried from now.
    pub(crate) fn start_enumerating(&mut self, id: UserId) {
        if let Some(User {
            state: UserState::Connected { enumerating, .. },
            ..
        }) = self.slab.get_mut(id)
        {
            *enumerating = true;
        }
    }

    /// Moves `id` to generation `gen_id`; returns the one it left.
    pub(crate) fn set_gen(&mut self, id: UserId, gen_id: GenId) -> GenId {
        std::mem::replace(&mut self.get_mut(id).gen_id, gen_id)
    }

    /// Decides whether `id` needs a connection of its own under `sharing`
    /// and `bind_conns` (the generation's bind connections per server): it
    /// asked for one; an AUTH user when there are no bind connections; any
    /// other user when sharing is on request and it did not ask to keep.
    /// (An AUTH user never shares either way: a bind connection takes one
    /// user at a time.)
    pub(crate) fn decide_private(
        &mut self,
        id: UserId,
        sharing: Sharing,
        bind_conns: u32,
    ) -> &User {
        let user = self.get_mut(id);
        user.private = user.wants_private
            || match user.kind {
                UserKind::Auth => bind_conns == 0,
                _ => sharing == Sharing::OnRequest && !user.keep,
            };
        user
    }

    pub(crate) fn queue_len(&self) -> usize {
        self.queue.len()
    }

    /// The queue, in arrival order.
    pub(crate) fn queued(&self) -> impl Iterator<Item = UserId> + '_ {
        self.queue.iter().copied()
    }

    /// Empties the queue; its users stay `Queued` (unplaced) for the caller
    /// to place again or hand back with [`Users::requeue`].
    pub(crate) fn take_queue(&mut self) -> VecDeque<UserId> {
        std::mem::take(&mut self.queue)
    }

    /// Puts `still` back at the head of the queue, before anyone queued
    /// since [`Users::take_queue`].
    pub(crate) fn requeue(&mut self, mut still: VecDeque<UserId>) {
        still.extend(self.queue.drain(..));
        self.queue = still;
    }

    /// Removes every user; ids issued before stay stale.
    pub(crate) fn clear(&mut self) {
        self.slab.clear();
        self.queue.clear();
    }

    /// Forgets `id`'s place (planted by [`crate::Fault::StrandWaiter`]):
    /// `Queued` and out of the queue. Returns its state before, and its
    /// deadline.
    #[cfg(feature = "fault-hooks")]
    pub(crate) fn strand(&mut self, id: UserId) -> (UserState, Instant) {
        let user = self.get_mut(id);
        let was = std::mem::replace(&mut user.state, UserState::Queued);
        let deadline = user.deadline;
        if !matches!(was, UserState::Waiting { .. }) {
            self.queue.retain(|&u| u != id);
        }
        (was, deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slab::SlabId;
    use crate::{CredKey, UserKind};

    fn user() -> User {
        User {
            gen_id: GenId::new(0, 0),
            kind: UserKind::Search,
            cred: CredKey::ANONYMOUS,
            server: None,
            private: false,
            wants_private: false,
            keep: false,
            referral: false,
            pages: false,
            attempt: 1,
            deadline: Instant::ZERO,
            state: UserState::Queued,
        }
    }

    #[test]
    fn a_removed_user_leaves_the_queue_with_it() {
        let mut users = Users::default();
        let (a, b) = (users.insert(user()), users.insert(user()));
        users.enqueue(a);
        users.enqueue(b);
        users.remove(a);
        assert_eq!(users.queued().collect::<Vec<_>>(), [b]);
        users.remove(b);
        assert_eq!(users.queue_len(), 0);
        assert_eq!(users.len(), 0);
    }

    #[test]
    fn users_held_back_from_the_queue_return_ahead_of_newcomers() {
        let mut users = Users::default();
        let (a, b) = (users.insert(user()), users.insert(user()));
        users.enqueue(a);
        let taken = users.take_queue();
        users.enqueue(b);
        users.requeue(taken);
        assert_eq!(users.queued().collect::<Vec<_>>(), [a, b]);
    }
}
