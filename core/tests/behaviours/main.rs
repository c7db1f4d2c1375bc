//! One story per behaviour of the brief (`b01_…` to `b15_…`), on virtual time,
//! asserting the exact actions the core emits; one module per group of
//! behaviours.

#[path = "../common/mod.rs"]
mod common;
mod contract;
mod fail_back;
mod failure;
mod generations;
mod placement;
mod status;

use std::time::Duration;

use common::*;
use ldapmux_core::{
    Action, CloseReason, Config, ConfigError, ConnError, ConnErrorKind, CredKey, Error, Event,
    GenPhase, Health, Instant, MAX_TRIES, Purpose, Request, Sharing, TimerReason, UserKind,
};

fn req(kind: UserKind) -> Request {
    Request::new(kind, CredKey::ANONYMOUS)
}
