//! How a [`Status`] and a [`Health`] print: a few short lines an operator
//! can read (`Debug` keeps every field, on one line).

use std::fmt;

use crate::info::{GenPhase, Health, Status};

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Health::Unknown => write!(f, "unknown (not reached yet)"),
            Health::Up => write!(f, "up"),
            Health::Returning { until } => {
                write!(f, "up, in its fail-back hold-down until {until}")
            }
            Health::Down {
                since,
                next_probe,
                probing: true,
            } => write!(f, "down since {since}, probe in flight since {next_probe}"),
            Health::Down {
                since, next_probe, ..
            } => write!(f, "down since {since}, next probe at {next_probe}"),
        }
    }
}

impl fmt::Display for Status {
    /// ```text
    /// pool g1: 3 users (1 queued) on 2 connections, up to 64 users per connection
    ///   s0 ldap://127.0.0.1:3891: up; 2 connections, 2 users; 2 opened, 0 failed to open, marked down 0 times
    ///   s1 ldap://127.0.0.1:3892: down since t+1.000s, next probe at t+2.000s; 0 connections, 0 users; …
    ///   s2 ldap://127.0.0.1:3893: unknown (not reached yet); 0 connections, 0 users; …
    ///   generations: g1 (current: 3 users, 2 connections)
    ///   counters: 5 acquires, 4 grants, 1 failed, 0 retries offered, 0 timed out, 1 connection found dead
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.shut_down, self.current) {
            (false, Some(g)) => write!(f, "pool {g}: ")?,
            _ => write!(f, "pool (shut down): ")?,
        }
        writeln!(
            f,
            "{} users ({} queued) on {} connections, up to {} users per connection",
            self.users, self.queued, self.conns, self.user_cap
        )?;
        for s in &self.servers {
            writeln!(
                f,
                "  {} {}: {}; {} connections, {} users; {} opened, {} failed to open, marked down {} times",
                s.id,
                s.addr,
                s.health,
                s.conns,
                s.users,
                s.counters.opens,
                s.counters.open_failures,
                s.counters.marked_down
            )?;
        }
        let gens: Vec<String> = self
            .generations
            .iter()
            .map(|g| {
                let phase = match g.phase {
                    GenPhase::Active => "current",
                    GenPhase::Detached => "draining",
                };
                format!(
                    "{} ({phase}: {} users, {} connections)",
                    g.id, g.users, g.conns
                )
            })
            .collect();
        writeln!(f, "  generations: {}", gens.join(", "))?;
        let c = &self.counters;
        write!(
            f,
            "  counters: {} acquires, {} grants, {} failed, {} retries offered, {} timed out, {} connections found dead",
            c.acquires, c.grants, c.fails, c.retries_offered, c.timeouts, c.lost
        )
    }
}
