//! Rules of a single transition, which [`Pool::check_invariants`] cannot see
//! in one state: the proptest and the stateright models call these around
//! the input they apply.

use crate::invariants::InvariantViolation;
use crate::{ConnInfo, ConnPhase, Instant, Pool, UserId, UserPhase};

/// Connections alike for sharing: generation, server, credential, purpose
/// and referral flag.
fn same_key(a: &ConnInfo, b: &ConnInfo) -> bool {
    (a.generation, a.server, a.cred, a.purpose, a.referral)
        == (b.generation, b.server, b.cred, b.purpose, b.referral)
}

/// Spread before stack, checked around the acquire of `user` (`before`: the
/// pool's connections just before it, `pool`: the pool just after):
///
/// * **no stacking while spreading is due**: a user granted at once a shared
///   connection that was already busy
///   ([`Config::spread_users_per_conn`](crate::Config::spread_users_per_conn)
///   users, or the cap) leaves that connection's kind with a connection
///   opening, or at the spread target, or its server at its connection limit;
///   (or the credential held back there after a refusal);
/// * **no spreading past the target**: a shared connection opened while one
///   of its kind had room was opened below
///   [`Config::spread_conns_per_server`](crate::Config::spread_conns_per_server).
pub fn check_spread_step(
    before: &[ConnInfo],
    pool: &Pool,
    user: UserId,
    now: Instant,
) -> Result<(), InvariantViolation> {
    let Some(config) = pool.config() else {
        return Ok(());
    };
    let cap = pool.user_cap();
    let busy_at = config.spread_users_per_conn.min(cap);
    let target = config.spread_conns_per_server as usize;
    let live = |c: &ConnInfo| matches!(c.phase, ConnPhase::Open | ConnPhase::Connecting);
    let after: Vec<ConnInfo> = pool.conns().collect();
    let kind_of = |set: &[ConnInfo], like: &ConnInfo| {
        set.iter()
            .filter(|c| live(c) && same_key(c, like))
            .cloned()
            .collect::<Vec<_>>()
    };
    if let Some(u) = pool.user(user)
        && u.phase == UserPhase::Connected
        && let Some(was) = before.iter().find(|c| Some(c.id) == u.conn)
        && was.purpose.is_shared()
        && was.users >= busy_at
    {
        let kind = kind_of(&after, was);
        let opening = kind.iter().any(|c| c.phase == ConnPhase::Connecting);
        let server_conns = after.iter().filter(|c| c.server == was.server).count();
        if !opening
            && kind.len() < target
            && server_conns < config.max_conns_per_server as usize
            && !pool.holds_back(now, was.server, was.cred)
        {
            return Err(InvariantViolation(format!(
                "{user} stacked on busy {} ({} users) with {} of {target} connections and no spare",
                was.id,
                was.users,
                kind.len()
            )));
        }
    }
    for new in after.iter().filter(|c| {
        c.phase == ConnPhase::Connecting
            && c.purpose.is_shared()
            && !before.iter().any(|b| b.id == c.id)
    }) {
        let kind = kind_of(before, new);
        // A paging user joins no connection another paging user holds.
        let for_pager = new
            .waiters
            .iter()
            .any(|&w| pool.user(w).is_some_and(|u| u.pages));
        let had_room = kind
            .iter()
            .any(|c| c.phase == ConnPhase::Open && c.users < cap && !(for_pager && c.paging));
        if had_room && kind.len() >= target {
            return Err(InvariantViolation(format!(
                "{} opened with {} of {target} connections of its kind, one with room",
                new.id,
                kind.len()
            )));
        }
    }
    Ok(())
}

/// Connect racing, checked around the report that `opened` opened (`before`:
/// the pool's connections just before it): if `opened` was racing a rival
/// that was still opening, every waiter of the rival that may use `opened`'s
/// server (it named no other) is now served by `opened`, unless `opened` is
/// full. Returns whether the rival had such waiters (the race mattered).
pub fn check_race_step(
    before: &[ConnInfo],
    pool: &Pool,
    opened: crate::ConnId,
) -> Result<bool, InvariantViolation> {
    let Some(winner) = before.iter().find(|c| c.id == opened) else {
        return Ok(false);
    };
    let Some(rival) = winner.rival.and_then(|r| before.iter().find(|c| c.id == r)) else {
        return Ok(false);
    };
    let movable: Vec<UserId> = rival
        .waiters
        .iter()
        .copied()
        .filter(|&w| {
            pool.user(w)
                .is_some_and(|u| u.server.is_none_or(|s| s == winner.server))
        })
        .collect();
    let full = pool
        .conn(opened)
        .is_some_and(|c| c.users >= pool.user_cap());
    for w in &movable {
        let served = pool
            .user(*w)
            .is_some_and(|u| u.phase == UserPhase::Connected && u.conn == Some(opened));
        if !served && !full {
            return Err(InvariantViolation(format!(
                "{opened} won the race but {w}, waiting on its rival {}, was not served by it",
                rival.id
            )));
        }
    }
    Ok(!movable.is_empty())
}
