//! The model's transitions: the inputs offered in each state, what each does
//! to the real core, and the properties checked on every state.

use ldapmux_core::*;
use stateright::{Model, Property};

use crate::*;

pub(crate) fn err(kind: ConnErrorKind) -> ConnError {
    ConnError::new(kind, "model")
}

impl Model for PoolModel {
    type State = State;
    type Action = Step;

    fn init_states(&self) -> Vec<State> {
        let mut pool =
            Pool::new(self.config.clone(), 1, Instant::ZERO).expect("valid model config");
        if let Some(policy) = self.policy {
            policy(&mut pool);
        }
        let record = Record {
            id: None,
            attempt: 0,
            seen: Seen::NotAsked,
            wakeups: 0,
            cancelled: false,
            sent: false,
            retry_offered: false,
            got_next: false,
            conn: None,
        };
        vec![State {
            pool,
            now: Instant::ZERO,
            ledger: Ledger {
                users: vec![record; self.users.len()],
                shut_down: false,
                down: [false; 4],
                granted_after_shutdown: false,
                granted_to_down_server: false,
                sent_write_retry_offered: false,
                retry_beyond_max: false,
                failed_back: false,
                drained_in_hold_down: false,
                coalesced_two: false,
                detached_freed: false,
                old_and_new_served: false,
                kept_across_reload: false,
                spread_broken: false,
                spare_opened: false,
                race_broken: false,
                rival_served: false,
                bind_reused: false,
                evidence: Evidence::default(),
                planted: false,
            },
            left: self.budget.clone(),
        }]
    }

    fn actions(&self, st: &State, out: &mut Vec<Step>) {
        if st.ledger.planted {
            return;
        }
        if self.plant.is_some() {
            out.push(Step::BugStrikes);
        }
        for (i, rec) in st.ledger.users.iter().enumerate() {
            match rec.seen {
                Seen::NotAsked => out.push(Step::UserAsks(i)),
                Seen::Done if rec.retry_offered && st.left.retries > 0 => {
                    out.push(Step::UserAsks(i))
                }
                Seen::Done if st.left.repeats > 0 => out.push(Step::UserAsks(i)),
                Seen::Granted => {
                    out.push(Step::UserReleases(i));
                    if st.left.retires > 0 {
                        out.push(Step::UserRetires(i));
                    }
                    if st.left.breaks > 0 {
                        out.push(Step::UserSeesBroken(i, false));
                        out.push(Step::UserSeesBroken(i, true));
                    }
                    if st.left.timeouts > 0 {
                        out.push(Step::UserTimesOut(i));
                    }
                    if self.users[i].kind == UserKind::Getent && !rec.got_next {
                        out.push(Step::UserReadsNext(i));
                    }
                }
                _ => {}
            }
            if matches!(rec.seen, Seen::Waiting | Seen::Granted) && st.left.cancels > 0 {
                out.push(Step::UserCancels(i));
            }
        }
        for c in st.pool.conns() {
            match c.phase {
                ConnPhase::Connecting => {
                    out.push(Step::RuntimeOpens(c.id));
                    if st.left.open_failures > 0 {
                        out.push(Step::RuntimeFailsToOpen(c.id));
                    }
                    if st.left.refusals > 0 {
                        out.push(Step::RuntimeRefusesBind(c.id));
                    }
                }
                ConnPhase::Open if st.left.breaks > 0 => out.push(Step::RuntimeLoses(c.id)),
                _ => {}
            }
        }
        let running = !st.pool.is_shut_down();
        for s in 0..self.config.servers.len() {
            let Some(id) = self.server_id(&st.pool, s) else {
                continue;
            };
            // A probe in flight (of a down server, of a returning one in
            // its hold-down, or the liveness check of one that is up).
            let answers = st.left.probes > 0 && st.pool.probe_in_flight(id);
            let health = crate::health(&st.pool, id);
            if answers {
                out.push(Step::ProbeAnswers(s, true));
                out.push(Step::ProbeAnswers(s, false));
            }
            match health {
                Some(Health::Down { .. }) if !answers && st.left.ups > 0 => {
                    out.push(Step::FeedReportsUp(s))
                }
                Some(Health::Up | Health::Returning { .. }) if st.left.downs > 0 && running => {
                    out.push(Step::FeedReportsDown(s))
                }
                _ => {}
            }
        }
        if st.left.reloads > 0 && running {
            out.push(Step::AdminReloads);
        }
        if st.left.server_changes > 0 && running && self.config.servers.len() > 1 {
            out.push(Step::DiscoveryChangesServers);
        }
        if st.left.shutdowns > 0 && running {
            out.push(Step::AdminShutsDown);
        }
        if st.left.forks > 0 && running {
            out.push(Step::ProcessForks);
        }
        if st.left.ticks > 0 && st.pool.poll_timeout().is_some() {
            out.push(Step::ClockTicks);
        }
    }

    fn next_state(&self, last: &State, step: Step) -> Option<State> {
        let mut st = last.clone();
        let now = st.now;
        let gens_before = st.pool.generations().count();
        let id = |st: &State, i: usize| st.ledger.users[i].id.expect("asked");
        let before = evidence::Before::of(&st.pool);
        let mut verdict = None;
        match step {
            Step::UserAsks(i) => {
                let rec = &st.ledger.users[i];
                let retrying = rec.seen == Seen::Done && rec.retry_offered && st.left.retries > 0;
                let attempt = if retrying { rec.attempt + 1 } else { 1 };
                if retrying {
                    st.left.retries -= 1;
                } else if rec.seen == Seen::Done {
                    st.left.repeats -= 1;
                }
                let before: Vec<ConnInfo> = st.pool.conns().collect();
                let spreads = st.pool.status().counters.spreads;
                let user = st.pool.handle_acquire(now, self.request(i, attempt));
                if ldapmux_core::check_spread_step(&before, &st.pool, user, now).is_err() {
                    st.ledger.spread_broken = true;
                }
                if st.pool.status().counters.spreads > spreads {
                    st.ledger.spare_opened = true;
                }
                let rec = &mut st.ledger.users[i];
                *rec = Record {
                    id: Some(user),
                    attempt,
                    seen: Seen::Waiting,
                    wakeups: 0,
                    cancelled: false,
                    sent: false,
                    retry_offered: false,
                    got_next: false,
                    conn: None,
                };
            }
            Step::RuntimeOpens(c) => {
                if let Some(info) = st.pool.conn(c) {
                    st.ledger.evidence.answered(&st.pool, info.server);
                    st.ledger
                        .evidence
                        .accepted(&st.pool, info.server, info.cred);
                }
                let before: Vec<ConnInfo> = st.pool.conns().collect();
                st.pool.handle(now, Event::ConnOpened { conn: c }).ok()?;
                match ldapmux_core::check_race_step(&before, &st.pool, c) {
                    Ok(served) => st.ledger.rival_served |= served,
                    Err(_) => st.ledger.race_broken = true,
                }
            }
            Step::RuntimeFailsToOpen(c) => {
                st.left.open_failures -= 1;
                st.pool
                    .handle(
                        now,
                        Event::ConnOpenFailed {
                            conn: c,
                            error: err(ConnErrorKind::Refused),
                        },
                    )
                    .ok()?;
            }
            Step::RuntimeLoses(c) => {
                st.left.breaks -= 1;
                st.pool
                    .handle(
                        now,
                        Event::ConnLost {
                            conn: c,
                            error: err(ConnErrorKind::Io),
                        },
                    )
                    .ok()?;
            }
            Step::UserReleases(i) => {
                let user = id(&st, i);
                if let Some(server) = st
                    .pool
                    .user(user)
                    .and_then(|u| u.conn)
                    .and_then(|c| st.pool.conn(c))
                    .map(|c| c.server)
                {
                    st.ledger.evidence.answered(&st.pool, server);
                }
                st.pool.handle(now, Event::Release { user }).ok()?;
                st.ledger.users[i].seen = Seen::Done;
            }
            Step::UserRetires(i) => {
                st.left.retires -= 1;
                let user = id(&st, i);
                st.pool.handle(now, Event::Retire { user }).ok()?;
                st.ledger.users[i].seen = Seen::Done;
            }
            Step::UserSeesBroken(i, sent) => {
                st.left.breaks -= 1;
                let user = id(&st, i);
                st.ledger.users[i].sent = sent;
                st.pool
                    .handle(
                        now,
                        Event::ConnBroken {
                            user,
                            error: err(ConnErrorKind::Io),
                            request_sent: sent,
                        },
                    )
                    .ok()?;
            }
            Step::UserTimesOut(i) => {
                st.left.timeouts -= 1;
                let user = id(&st, i);
                st.ledger.users[i].sent = true;
                st.pool
                    .handle(
                        now,
                        Event::ConnBroken {
                            user,
                            error: err(ConnErrorKind::Timeout),
                            request_sent: true,
                        },
                    )
                    .ok()?;
            }
            Step::RuntimeRefusesBind(c) => {
                st.left.refusals -= 1;
                let info = st.pool.conn(c)?;
                st.ledger
                    .evidence
                    .refused(&st.pool, info.server, info.cred, now);
                st.pool
                    .handle(
                        now,
                        Event::ConnOpenFailed {
                            conn: c,
                            error: err(ConnErrorKind::InvalidCredentials),
                        },
                    )
                    .ok()?;
            }
            Step::UserCancels(i) => {
                st.left.cancels -= 1;
                let user = id(&st, i);
                st.pool.handle(now, Event::Cancel { user }).ok()?;
                let rec = &mut st.ledger.users[i];
                rec.seen = Seen::Done;
                rec.cancelled = true;
                rec.retry_offered = false;
            }
            Step::UserReadsNext(i) => {
                let user = id(&st, i);
                st.ledger.users[i].got_next = true;
                st.pool.handle(now, Event::GetNext { user }).ok()?;
            }
            Step::FeedReportsDown(s) => {
                st.left.downs -= 1;
                let server = self.server_id(&st.pool, s)?;
                st.ledger.down[s] = true;
                if self.bug != Some(Bug::SwallowServerDown) {
                    st.pool.handle(now, Event::ServerDown { server }).ok()?;
                }
            }
            Step::FeedReportsUp(s) => {
                st.left.ups -= 1;
                let server = self.server_id(&st.pool, s)?;
                st.pool.handle(now, Event::ServerUp { server }).ok()?;
                st.ledger.down[s] = false;
            }
            Step::ProbeAnswers(s, ok) => {
                st.left.probes -= 1;
                verdict = Some((s, ok));
                let server = self.server_id(&st.pool, s)?;
                st.pool
                    .handle(now, Event::ProbeResult { server, ok })
                    .ok()?;
                if ok {
                    st.ledger.down[s] = false;
                }
            }
            Step::AdminReloads => {
                st.left.reloads -= 1;
                st.pool
                    .handle(now, Event::Reload(Box::new(self.config.clone())))
                    .ok()?;
            }
            Step::DiscoveryChangesServers => {
                st.left.server_changes -= 1;
                let mut config = self.config.clone();
                if st.pool.config().is_some_and(|c| *c == self.config) {
                    config.servers.pop();
                }
                let old = st.pool.current_generation();
                let before: Vec<ConnId> = st
                    .pool
                    .conns()
                    .filter(|c| Some(c.generation) == old)
                    .map(|c| c.id)
                    .collect();
                st.pool
                    .handle(now, Event::ReloadServers(Box::new(config)))
                    .ok()?;
                let new = st.pool.current_generation();
                if before
                    .iter()
                    .any(|&id| st.pool.conn(id).is_some_and(|c| Some(c.generation) == new))
                {
                    st.ledger.kept_across_reload = true;
                }
            }
            Step::AdminShutsDown => {
                st.left.shutdowns -= 1;
                st.ledger.shut_down = true;
                let open = st.pool.conns().find(|c| c.phase == ConnPhase::Open);
                let fake = open.map(|c| c.id).zip(st.ledger.users[0].id);
                st.pool.handle(now, Event::Shutdown).ok()?;
                if self.bug == Some(Bug::GrantAfterShutdown)
                    && let Some((conn, user)) = fake
                {
                    let _ = self.observe(&mut st);
                    self.observe_grant(&mut st, user, conn);
                }
            }
            Step::ProcessForks => {
                st.left.forks -= 1;
                st.pool.handle(now, Event::Forked).ok()?;
            }
            Step::ClockTicks => {
                st.left.ticks -= 1;
                let at = st.pool.poll_timeout()?.at;
                st.now = st.now.max(at);
                st.pool.handle_timeout(st.now);
            }
            Step::BugStrikes => {
                let plant = self.plant?;
                if !plant(&mut st.pool) {
                    return None;
                }
                st.ledger.planted = true;
                let closed = self.observe(&mut st);
                self.note_failback_drains(last, &mut st, &closed);
                return Some(st);
            }
        }
        let closed = self.observe(&mut st);
        self.note_failback_drains(last, &mut st, &closed);
        self.after_input(&mut st, gens_before);
        let now = st.now;
        st.ledger
            .evidence
            .after_input(&before, &st.pool, now, verdict);
        Some(st)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let mut always = vec![
            Property::always("reference counts follow the rule", |_, st: &State| {
                refcounts_follow_the_rule(&st.pool)
            }),
            Property::always(
                "no user is attached to a freed connection or generation",
                |_, st: &State| no_user_on_freed_objects(&st.pool),
            ),
            Property::always(
                "a user only holds a connection to its server with its credential",
                |m: &Self, st: &State| {
                    users_match_their_connections(&st.pool) && m.grants_match_the_users(st)
                },
            ),
            Property::always("an AUTH user never shares", |_, st: &State| {
                auth_never_shares(&st.pool)
            }),
            Property::always(
                "a bind connection serves one password check at a time and nothing else",
                |_, st: &State| bind_connections_serve_one_check(&st.pool),
            ),
            Property::always(
                "a connection carries at most one paged search",
                |m: &Self, st: &State| m.one_paged_search_per_connection(st),
            ),
            Property::always("nothing is granted after shutdown", |_, st: &State| {
                !st.ledger.granted_after_shutdown
            }),
            Property::always(
                "nothing is granted to a server known down",
                |_, st: &State| !st.ledger.granted_to_down_server,
            ),
            Property::always(
                "every waiter is woken exactly once",
                |m: &Self, st: &State| {
                    every_waiter_woken_once(st) && m.no_waiter_is_left_at_the_end(st)
                },
            ),
            Property::always(
                "a write is never retried after its request may have been sent",
                |_, st: &State| !st.ledger.sent_write_retry_offered,
            ),
            Property::always("no operation gets more than 3 tries", |_, st: &State| {
                !st.ledger.retry_beyond_max
                    && st.ledger.users.iter().all(|r| r.attempt <= MAX_TRIES)
            }),
            Property::always(
                "connections fail back only to a server out of its hold-down",
                |_, st: &State| !st.ledger.drained_in_hold_down,
            ),
            Property::always(
                "an idle connection is closed after its idle timeout",
                |m: &Self, st: &State| m.idle_connections_close_at_the_end(st),
            ),
            Property::always(
                "no user stacks on a busy connection while a spare is due, and no spare opens past the target",
                |_, st: &State| !st.ledger.spread_broken,
            ),
            Property::always(
                "a rival that opens first serves the waiters of the slow connect",
                |_, st: &State| !st.ledger.race_broken,
            ),
            Property::always(
                "a check that began before the server's last answer does not mark it down",
                |_, st: &State| !st.ledger.evidence.stale_verdict_obeyed,
            ),
            Property::always(
                "no fail-back to a server that failed during its hold-down",
                |_, st: &State| !st.ledger.evidence.trusted_too_soon,
            ),
            Property::always(
                "a refused credential is not retried before its hold-down ends",
                |_, st: &State| !st.ledger.evidence.refused_sent_again,
            ),
            Property::always(
                "a user who finds every server down gets a connect tried within its deadline",
                |_, st: &State| !st.ledger.evidence.gave_up_untried,
            ),
        ];
        let sometimes = [
            Property::sometimes(DETACHED_FREED, |_, st: &State| st.ledger.detached_freed),
            Property::sometimes(FAIL_BACK, |_, st: &State| st.ledger.failed_back),
            Property::sometimes(COALESCED, |_, st: &State| st.ledger.coalesced_two),
            Property::sometimes(OLD_AND_NEW, |_, st: &State| st.ledger.old_and_new_served),
            Property::sometimes(KEPT, |_, st: &State| st.ledger.kept_across_reload),
            Property::sometimes(SPARE, |_, st: &State| st.ledger.spare_opened),
            Property::sometimes(RIVAL_SERVED, |_, st: &State| st.ledger.rival_served),
            Property::sometimes(VERDICT_YIELDS, |_, st: &State| {
                st.ledger.evidence.stale_verdict_ignored
            }),
            Property::sometimes(HELD_BACK, |_, st: &State| st.ledger.evidence.held_back),
            Property::sometimes(BIND_REUSED, |_, st: &State| st.ledger.bind_reused),
            Property::sometimes(PAGER_BESIDE_SEARCH, |m: &Self, st: &State| {
                m.pager_beside_search(st)
            }),
            Property::sometimes(BROUGHT_FORWARD, |_, st: &State| {
                st.ledger.evidence.brought_forward
            }),
        ];
        always.extend(
            sometimes
                .into_iter()
                .filter(|p| self.reaches.contains(&p.name)),
        );
        always
    }
}
