//! An operation's retry rule as a value: fed each failure the pool reports,
//! it says whether to try again (and with which request) or to give up (and
//! with which error). The driver's [`Failure`] carries the core's verdict
//! (`retry`: another try may succeed); this adds the try limit and the
//! choice of the error the caller sees.

use ldapmux_core::{Error as CoreError, MAX_TRIES, Request};
use ldapmux_driver::Failure;

/// The tries of one operation.
#[derive(Debug)]
pub(crate) struct Tries {
    request: Request,
    /// The most informative error so far.
    last: Option<CoreError>,
}

/// What to do after a failure.
#[derive(Debug, PartialEq)]
pub(crate) enum Next {
    /// Try again with this request (its `attempt` is one more).
    Retry(Request),
    /// Stop: the caller gets this error.
    GiveUp(CoreError),
}

impl Tries {
    /// The first try of `request`.
    pub(crate) fn new(request: Request) -> Tries {
        Tries {
            request,
            last: None,
        }
    }

    /// The request of the current try.
    pub(crate) fn request(&self) -> &Request {
        &self.request
    }

    /// The request of the current try, to set its deadline.
    pub(crate) fn request_mut(&mut self) -> &mut Request {
        &mut self.request
    }

    /// The current try failed with `failure`. Another try is made if the
    /// pool says one may succeed and fewer than [`MAX_TRIES`] were made.
    /// Giving up returns the most informative error seen: "no server is
    /// available" or "server down" after a real connect error (a TLS
    /// certificate refused, say) says less than that error, so the earlier
    /// one is kept.
    pub(crate) fn on_failure(&mut self, failure: Failure) -> Next {
        let uninformative = matches!(
            failure.error,
            CoreError::NoServerAvailable | CoreError::ServerDown { .. }
        );
        if !(uninformative && self.last.is_some()) {
            self.last = Some(failure.error);
        }
        if failure.retry && self.request.attempt < MAX_TRIES {
            self.request = self.request.retry();
            Next::Retry(self.request.clone())
        } else {
            Next::GiveUp(self.last.take().expect("set above"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldapmux_core::{ConnError, ConnErrorKind, CredKey, ServerId, UserKind};

    /// A server id (only the core hands them out).
    fn server() -> ServerId {
        let config = ldapmux_core::Config::builder()
            .server("ldap://a")
            .build()
            .expect("valid");
        ldapmux_core::Pool::new(config, 1, ldapmux_core::Instant::ZERO)
            .expect("pool")
            .server_id("ldap://a")
            .expect("interned")
    }

    fn request() -> Request {
        Request::new(UserKind::Search, CredKey::ANONYMOUS)
    }

    fn lost(retry: bool) -> Failure {
        Failure {
            error: CoreError::ConnectionLost {
                server: server(),
                cause: ConnError::new(ConnErrorKind::Io, "reset"),
            },
            retry,
        }
    }

    fn tls() -> CoreError {
        CoreError::ConnectFailed {
            server: server(),
            cause: ConnError::new(ConnErrorKind::Tls, "certificate unknown"),
        }
    }

    #[test]
    fn a_retryable_failure_is_tried_again_with_the_next_attempt() {
        let mut tries = Tries::new(request());
        assert_eq!(tries.request().attempt, 1);
        match tries.on_failure(lost(true)) {
            Next::Retry(next) => assert_eq!(next.attempt, 2),
            other => panic!("{other:?}"),
        }
        assert_eq!(tries.request().attempt, 2);
    }

    #[test]
    fn the_third_try_is_the_last() {
        let mut tries = Tries::new(request());
        assert!(matches!(tries.on_failure(lost(true)), Next::Retry(_)));
        assert!(matches!(tries.on_failure(lost(true)), Next::Retry(_)));
        assert_eq!(tries.request().attempt, MAX_TRIES);
        assert!(matches!(
            tries.on_failure(lost(true)),
            Next::GiveUp(CoreError::ConnectionLost { .. })
        ));
    }

    #[test]
    fn a_failure_the_pool_says_not_to_retry_gives_up_at_once() {
        let mut tries = Tries::new(request());
        assert!(matches!(
            tries.on_failure(lost(false)),
            Next::GiveUp(CoreError::ConnectionLost { .. })
        ));
    }

    #[test]
    fn no_server_available_does_not_hide_the_error_that_caused_it() {
        let mut tries = Tries::new(request());
        let first = Failure {
            error: tls(),
            retry: true,
        };
        assert!(matches!(tries.on_failure(first), Next::Retry(_)));
        let then = Failure {
            error: CoreError::NoServerAvailable,
            retry: false,
        };
        assert_eq!(tries.on_failure(then), Next::GiveUp(tls()));
    }

    #[test]
    fn no_server_available_alone_is_what_the_caller_gets() {
        let mut tries = Tries::new(request());
        let only = Failure {
            error: CoreError::NoServerAvailable,
            retry: false,
        };
        assert_eq!(
            tries.on_failure(only),
            Next::GiveUp(CoreError::NoServerAvailable)
        );
    }

    #[test]
    fn a_later_informative_error_replaces_an_earlier_one() {
        let mut tries = Tries::new(request());
        let first = Failure {
            error: tls(),
            retry: true,
        };
        assert!(matches!(tries.on_failure(first), Next::Retry(_)));
        assert!(matches!(
            tries.on_failure(lost(false)),
            Next::GiveUp(CoreError::ConnectionLost { .. })
        ));
    }
}
