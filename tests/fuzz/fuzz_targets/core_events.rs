//! Random input sequences into the core: no input panics, and
//! `check_invariants` holds after every input (every action drained first,
//! as the contract says). Ids are picked among the live ones so the inputs
//! reach deep states, plus stale and unknown ids, which must be refused
//! cleanly.

#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use ldapmux_core::{
    Config, ConnError, ConnErrorKind, ConnId, CredKey, Event, Instant, Pool, Request, Sharing,
    UserId, UserKind,
};
use libfuzzer_sys::fuzz_target;

const SERVERS: [&str; 3] = ["ldap://a", "ldap://b", "ldap://c"];

#[derive(Arbitrary, Debug)]
enum Input {
    Acquire {
        kind: u8,
        cred: u8,
        server: Option<u8>,
        private: bool,
        keep: bool,
        referral: bool,
        attempt: u8,
        deadline_ms: Option<u16>,
    },
    Opened(u8),
    OpenFailed(u8, u8),
    Lost(u8),
    Release(u8),
    Broken(u8, bool),
    Cancel(u8),
    GetNext(u8),
    ServerDown(u8),
    ServerUp(u8),
    Probe(u8, bool),
    Reload {
        cap: u8,
        conns: u8,
        on_request: bool,
        servers: u8,
        hold_ms: u16,
        /// As `Event::ReloadServers` (keeps connections to listed servers).
        keep: bool,
    },
    Shutdown,
    Forked,
    NoMultiplex,
    NextTimer,
    Advance(u16),
    /// An input naming a user seen earlier, live or long gone.
    EarlierUser(u8, bool),
    /// An input naming a connection seen earlier, open or long closed.
    EarlierConn(u8, bool),
}

#[derive(Arbitrary, Debug)]
struct Case {
    seed: u64,
    cap: u8,
    conns: u8,
    inputs: Vec<Input>,
}

fn config(cap: u8, conns: u8, sharing: Sharing, servers: u8, hold_ms: u16) -> Option<Config> {
    let mut b = Config::builder()
        .max_users_per_conn(u32::from(cap % 5))
        .max_conns_per_server(u32::from(conns % 4))
        // Spread before stack and connect racing from the same bytes: busy
        // at 1-4 users, 1-4 spread connections, racing off or after 0-699 ms
        // (0 is refused).
        .spread(1 + u32::from(cap / 5 % 4), 1 + u32::from(conns / 4 % 4))
        .connect_race_delay(
            (hold_ms % 3 != 0).then(|| Duration::from_millis(u64::from(hold_ms % 700))),
        )
        .sharing(sharing)
        .failback_hold_down(Duration::from_millis(u64::from(hold_ms)))
        .probe_backoff(Duration::from_millis(100), Duration::from_millis(800));
    for (i, s) in SERVERS.iter().take(usize::from(servers % 4)).enumerate() {
        b = if i == 0 {
            b.preferred_server(*s)
        } else {
            b.server(*s)
        };
    }
    // Invalid configurations must be refused by build(), never panic.
    b.build().ok()
}

fn pick<T: Copy>(items: &[T], i: u8) -> Option<T> {
    (!items.is_empty()).then(|| items[usize::from(i) % items.len()])
}

fuzz_target!(|case: Case| {
    let Some(initial) = config(case.cap.max(1), case.conns.max(1), Sharing::Always, 2, 500) else {
        return;
    };
    let mut now = Instant::ZERO;
    let mut pool = Pool::new(initial, case.seed, now).expect("valid config");
    let mut earlier_users: Vec<UserId> = Vec::new();
    let mut earlier_conns: Vec<ConnId> = Vec::new();
    for input in case.inputs.into_iter().take(300) {
        let users: Vec<UserId> = pool.users().map(|u| u.id).collect();
        let conns: Vec<ConnId> = pool.conns().map(|c| c.id).collect();
        for u in &users {
            if !earlier_users.contains(u) {
                earlier_users.push(*u);
            }
        }
        for c in &conns {
            if !earlier_conns.contains(c) {
                earlier_conns.push(*c);
            }
        }
        let err = |k: u8| {
            let kinds = [
                ConnErrorKind::Refused,
                ConnErrorKind::Timeout,
                ConnErrorKind::Tls,
                ConnErrorKind::InvalidCredentials,
                ConnErrorKind::Io,
            ];
            ConnError::new(kinds[usize::from(k) % kinds.len()], "fuzz")
        };
        let server = |s: u8| pool.server_id(SERVERS[usize::from(s) % 3]);
        let event = match input {
            Input::Acquire {
                kind,
                cred,
                server,
                private,
                keep,
                referral,
                attempt,
                deadline_ms,
            } => {
                let kinds = [
                    UserKind::Search,
                    UserKind::Getent,
                    UserKind::Write,
                    UserKind::Auth,
                ];
                let mut r =
                    Request::new(kinds[usize::from(kind) % 4], CredKey(u64::from(cred % 3)))
                        .attempt(attempt % 5);
                if let Some(s) = server {
                    r = r.server(if s % 4 == 3 {
                        "ldap://elsewhere"
                    } else {
                        SERVERS[usize::from(s) % 3]
                    });
                }
                if private {
                    r = r.private();
                }
                if keep {
                    r = r.keep();
                }
                if referral {
                    r = r.referral();
                }
                if let Some(ms) = deadline_ms {
                    r = r.deadline(now + Duration::from_millis(u64::from(ms)));
                }
                let _ = pool.handle_acquire(now, r);
                None
            }
            Input::Opened(i) => pick(&conns, i).map(|conn| Event::ConnOpened { conn }),
            Input::OpenFailed(i, k) => pick(&conns, i).map(|conn| Event::ConnOpenFailed {
                conn,
                error: err(k),
            }),
            Input::Lost(i) => pick(&conns, i).map(|conn| Event::ConnLost {
                conn,
                error: err(4),
            }),
            Input::Release(i) => pick(&users, i).map(|user| Event::Release { user }),
            Input::Broken(i, sent) => pick(&users, i).map(|user| Event::ConnBroken {
                user,
                error: err(4),
                request_sent: sent,
            }),
            Input::Cancel(i) => pick(&users, i).map(|user| Event::Cancel { user }),
            Input::GetNext(i) => pick(&users, i).map(|user| Event::GetNext { user }),
            Input::ServerDown(s) => server(s).map(|server| Event::ServerDown { server }),
            Input::ServerUp(s) => server(s).map(|server| Event::ServerUp { server }),
            Input::Probe(s, ok) => server(s).map(|server| Event::ProbeResult { server, ok }),
            Input::Reload {
                cap,
                conns,
                on_request,
                servers,
                hold_ms,
                keep,
            } => {
                let sharing = if on_request {
                    Sharing::OnRequest
                } else {
                    Sharing::Always
                };
                // An invalid configuration is skipped here; the core's own
                // validation of a bad reload is fed below as a default config.
                let config = Box::new(
                    config(cap, conns, sharing, servers, hold_ms).unwrap_or_default(),
                );
                Some(if keep {
                    Event::ReloadServers(config)
                } else {
                    Event::Reload(config)
                })
            }
            Input::Shutdown => Some(Event::Shutdown),
            Input::Forked => Some(Event::Forked),
            Input::NoMultiplex => Some(Event::MultiplexUnsupported),
            Input::NextTimer => {
                if let Some(t) = pool.poll_timeout() {
                    now = now.max(t.at);
                }
                pool.handle_timeout(now);
                None
            }
            Input::Advance(ms) => {
                now = now + Duration::from_millis(u64::from(ms));
                pool.handle_timeout(now);
                None
            }
            Input::EarlierUser(i, release) => pick(&earlier_users, i).map(|user| {
                if release {
                    Event::Release { user }
                } else {
                    Event::Cancel { user }
                }
            }),
            Input::EarlierConn(i, opened) => pick(&earlier_conns, i).map(|conn| {
                if opened {
                    Event::ConnOpened { conn }
                } else {
                    Event::ConnLost {
                        conn,
                        error: err(4),
                    }
                }
            }),
        };
        if let Some(event) = event {
            let _ = pool.handle(now, event);
        }
        while pool.poll_action().is_some() {}
        if let Err(e) = pool.check_invariants() {
            panic!("{e}\n{pool:#?}");
        }
    }
});
