//! The models `check` runs, their configurations and pinned state counts.

use std::time::Duration;

use ldapmux_core::*;

use crate::*;

/// The models' common configuration. Connect racing is off here: it is
/// checked in the `racing` model, where it multiplies the states of one
/// model (about 3× each) rather than of all.
pub(crate) fn base(servers: usize) -> ldapmux_core::ConfigBuilder {
    let mut b = Config::builder()
        .connect_race_delay(None)
        // As long as the probe backoff minimum: a returning server is probed
        // once, at the end of its hold-down (the `evidence` model probes one
        // during it too).
        .failback_hold_down(Duration::from_secs(1))
        .probe_backoff(Duration::from_secs(1), Duration::from_secs(4))
        .default_acquire_timeout(Duration::from_secs(30));
    for (i, s) in SERVERS.iter().take(servers).enumerate() {
        b = if i == 0 {
            b.preferred_server(*s)
        } else {
            b.server(*s)
        };
    }
    b
}

/// Unique states of each default model, checked by `ldapmux-model check`: a
/// change means the state space changed; look at why before updating.
pub const PINNED_STATES: [(&str, usize); 10] = [
    // 23 496 319 since a user who finds every server down brings a probe
    // forward (issue 16); 22 309 085 when fail-back first needed a good
    // probe after the hold-down (this model has no probe answer to spend),
    // 23 861 297 before that, and
    // 21 731 713 before a connection that dies of an I/O error retired its
    // siblings to the same server (issue 15).
    ("sharing", 23_496_319),
    // 1 604 354 since siblings retire (issue 15): was 1 497 168, and
    // 1 409 901 before an idle connection made room at the per-server limit
    // for a user of another credential.
    // 2 523 976 since its password check takes a bind connection, kept
    // for the next check (issue 19): was 1 604 354.
    ("credentials", 2_523_976),
    // 5 123 075 since a user who finds every server down brings a probe
    // forward, and 4 361 333 since a returning server is probed during its
    // hold-down and falls back down on a failed probe (issue 16): was
    // 4 238 256,
    // 4 225 680 before siblings retired (issue 15), and
    // 4 197 692 before a server falling during its hold-down resumed its
    // probe backoff.
    ("failover", 5_123_075),
    // 4 317 320 since siblings retire (issue 15): was 4 218 954, and
    // 906 496 before discovery could send a new server list.
    ("lifecycle", 4_317_320),
    // Spread before stack (issue 15): one server, four users.
    ("spread", 549_397),
    // Connect racing (issue 15): two servers, a user that named the first.
    // 2 098 263 since a user who finds every server down brings a probe
    // forward (issue 16): was 1 989 595.
    ("racing", 2_098_263),
    // Liveness checks and probed hold-downs (issue 16).
    ("evidence", 2_294_238),
    // Refused credentials held back (issue 16). 473 012 since password
    // checks take bind connections (issue 19): was 318 422.
    ("refusals", 473_012),
    // Bind connections (issue 19): two checks and a search of the same
    // credential on one server with one bind connection.
    ("binds", 4_530_723),
    // One paged search per connection (issues 18, 19): two paging getents
    // and a search on one server of at most two connections.
    ("paging", 297_390),
];

/// The models `check` runs; `deep` widens their bounds.
pub fn models(deep: bool) -> Vec<PoolModel> {
    let extra = u8::from(deep);
    vec![
        PoolModel {
            name: "sharing",
            config: base(2).max_users_per_conn(2).build().expect("valid"),
            users: vec![
                UserSpec::new(UserKind::Search, 0),
                UserSpec::new(UserKind::Search, 0),
                UserSpec::new(UserKind::Write, 0),
            ],
            budget: Budget {
                open_failures: 1,
                breaks: 1,
                cancels: 1,
                retries: 1,
                downs: 1,
                ups: 1,
                ticks: 1 + extra,
                ..Budget::default()
            },
            bug: None,
            plant: None,
            policy: None,
            reaches: &[COALESCED],
        },
        PoolModel {
            name: "credentials",
            config: base(2)
                .max_users_per_conn(2)
                .max_conns_per_server(2)
                .build()
                .expect("valid"),
            users: vec![
                UserSpec::new(UserKind::Search, 1),
                UserSpec::new(UserKind::Auth, 1),
                UserSpec {
                    kind: UserKind::Getent,
                    cred: CredKey(2),
                    server: Some(1),
                    pages: false,
                },
            ],
            budget: Budget {
                open_failures: 1,
                breaks: 1,
                cancels: 2 + extra,
                retries: 1,
                ticks: 1,
                ..Budget::default()
            },
            bug: None,
            plant: None,
            policy: None,
            reaches: &[],
        },
        PoolModel {
            name: "failover",
            config: base(2).build().expect("valid"),
            users: vec![
                UserSpec::new(UserKind::Search, 0),
                UserSpec::new(UserKind::Search, 0),
            ],
            budget: Budget {
                open_failures: 1,
                breaks: 1,
                downs: 1,
                ups: 1,
                probes: 1,
                retries: 1,
                ticks: 4 + extra,
                ..Budget::default()
            },
            bug: None,
            plant: None,
            policy: None,
            reaches: &[FAIL_BACK, COALESCED],
        },
        PoolModel {
            name: "lifecycle",
            config: base(2).build().expect("valid"),
            users: vec![
                UserSpec::new(UserKind::Getent, 0),
                UserSpec::new(UserKind::Write, 1),
            ],
            budget: Budget {
                breaks: 1,
                cancels: 1,
                retries: 1,
                reloads: 2 + extra,
                server_changes: 1,
                shutdowns: 1,
                forks: 1,
                ticks: 1,
                ..Budget::default()
            },
            bug: None,
            plant: None,
            policy: None,
            reaches: &[DETACHED_FREED, OLD_AND_NEW, KEPT],
        },
        PoolModel {
            name: "spread",
            config: spread_config(),
            users: vec![UserSpec::new(UserKind::Search, 0); 4],
            budget: Budget {
                breaks: 1,
                ticks: 1,
                ..Budget::default()
            },
            bug: None,
            plant: None,
            policy: None,
            reaches: &[SPARE],
        },
        PoolModel {
            name: "racing",
            config: racing_config(),
            users: vec![
                UserSpec::new(UserKind::Search, 0),
                UserSpec::new(UserKind::Search, 0),
                UserSpec {
                    kind: UserKind::Search,
                    cred: CredKey(0),
                    server: Some(0),
                    pages: false,
                },
            ],
            budget: Budget {
                open_failures: 1,
                downs: 1,
                retries: 1,
                reloads: 1,
                ticks: 3 + extra,
                ..Budget::default()
            },
            bug: None,
            plant: None,
            policy: None,
            reaches: &[RIVAL_SERVED, COALESCED],
        },
        PoolModel {
            name: "evidence",
            config: evidence_config(),
            users: vec![UserSpec::new(UserKind::Search, 0); 2],
            budget: Budget {
                timeouts: 1,
                retries: 1,
                downs: 1,
                ups: 1,
                probes: 2,
                ticks: 3 + extra,
                ..Budget::default()
            },
            bug: None,
            plant: None,
            policy: None,
            reaches: &[VERDICT_YIELDS, FAIL_BACK, BROUGHT_FORWARD],
        },
        PoolModel {
            name: "refusals",
            config: base(2).build().expect("valid"),
            users: vec![
                UserSpec::new(UserKind::Auth, 1),
                UserSpec::new(UserKind::Auth, 1),
                UserSpec::new(UserKind::Search, 0),
            ],
            budget: Budget {
                refusals: 2,
                open_failures: 1,
                retries: 1,
                ticks: 2 + extra,
                ..Budget::default()
            },
            bug: None,
            plant: None,
            policy: None,
            reaches: &[HELD_BACK],
        },
        PoolModel {
            name: "binds",
            config: base(1)
                .bind_conns_per_server(1)
                .max_conns_per_server(2)
                .build()
                .expect("valid"),
            users: vec![
                UserSpec::new(UserKind::Auth, 0),
                UserSpec::new(UserKind::Auth, 0),
                UserSpec::new(UserKind::Search, 0),
            ],
            budget: Budget {
                open_failures: 1,
                breaks: 1,
                cancels: 1,
                retries: 1,
                retires: 1,
                reloads: 1,
                downs: 1,
                ticks: 2 + extra,
                ..Budget::default()
            },
            bug: None,
            plant: None,
            policy: None,
            reaches: &[BIND_REUSED],
        },
        PoolModel {
            name: "paging",
            config: base(1).max_conns_per_server(2).build().expect("valid"),
            users: vec![
                UserSpec::new(UserKind::Getent, 0).paging(),
                UserSpec::new(UserKind::Getent, 0).paging(),
                UserSpec::new(UserKind::Search, 0),
            ],
            budget: Budget {
                open_failures: 1,
                breaks: 1,
                cancels: 1,
                retries: 1,
                ticks: 1 + extra,
                ..Budget::default()
            },
            bug: None,
            plant: None,
            policy: None,
            reaches: &[PAGER_BESIDE_SEARCH],
        },
    ]
}

/// One server, 3 users per connection, busy at 1 user, spreading to 2 of at
/// most 3 connections: four users see one connection, a spare, stacking,
/// and the hard limit.
pub(crate) fn spread_config() -> Config {
    Config::builder()
        .server(SERVERS[0])
        .max_users_per_conn(3)
        .max_conns_per_server(3)
        .spread(1, 2)
        .build()
        .expect("valid")
}

/// Two servers; a 2 s fail-back hold-down probed every second (one probe
/// during it, one at its end); a 1 s connect timeout bounds each probe and
/// liveness check.
pub(crate) fn evidence_config() -> Config {
    base(2)
        .failback_hold_down(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(1))
        .build()
        .expect("valid")
}

/// Two servers, racing after 200 ms of a 1 s connect timeout.
pub(crate) fn racing_config() -> Config {
    base(2)
        .connect_timeout(Duration::from_secs(1))
        .connect_race_delay(Some(Duration::from_millis(200)))
        .build()
        .expect("valid")
}
