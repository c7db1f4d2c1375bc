//! A granted connection, held by one user until it is released.

use ldapmux_core::{Action, ConnError, ConnId, Error, Event, UserId};

use crate::{Driver, Failure};

/// A connection granted to one user. Run the operation on [`Lease::conn`],
/// then call [`Lease::release`] (dropping the lease does the same), or
/// [`Lease::broken`] if the connection died under it.
#[derive(Debug)]
pub struct Lease {
    driver: Driver,
    user: UserId,
    conn: ConnId,
    done: bool,
}

impl Lease {
    pub(crate) fn new(driver: Driver, user: UserId, conn: ConnId) -> Self {
        Lease {
            driver,
            user,
            conn,
            done: false,
        }
    }

    /// The connection to use.
    pub fn conn(&self) -> ConnId {
        self.conn
    }

    /// The user this lease belongs to.
    pub fn user(&self) -> UserId {
        self.user
    }

    /// The operation finished (successfully or with an ordinary LDAP result).
    pub fn release(mut self) {
        self.finish();
    }

    /// The operation finished, but left the connection in a state it cannot
    /// vouch for (a bind answered with neither success nor
    /// invalidCredentials): the pool closes the connection once its last
    /// user leaves ([`Event::Retire`]), without suspecting the server.
    pub fn retire(mut self) {
        self.finish_with(|user| Event::Retire { user });
    }

    /// The connection died under the operation. Returns the pool's verdict:
    /// the error to report and whether another try is worth making. Never
    /// `retry` for a write whose request may have reached the server.
    pub fn broken(mut self, error: ConnError, request_sent: bool) -> Failure {
        self.done = true;
        let user = self.user;
        let (refused, answers) = self.driver.run(|st, now| {
            if let Some(failure) = st.interrupted.remove(&user) {
                return Some(failure);
            }
            st.pool
                .handle(
                    now,
                    Event::ConnBroken {
                        user,
                        error,
                        request_sent,
                    },
                )
                .err()
                .map(|error| Failure {
                    error,
                    retry: false,
                })
        });
        refused
            .or_else(|| answer_for(user, answers))
            .unwrap_or(Failure {
                error: Error::UnknownUser(user),
                retry: false,
            })
    }

    /// A getent enumeration asks for its next entry: `Ok` to go on reading
    /// from [`Lease::conn`], or the saved error if the connection died
    /// (behaviour 10), after which the lease is finished.
    pub fn get_next(&mut self) -> Result<(), Failure> {
        if self.done {
            return Err(Failure {
                error: Error::UnknownUser(self.user),
                retry: false,
            });
        }
        let user = self.user;
        let (refused, answers) = self.driver.run(|st, now| {
            if let Some(failure) = st.interrupted.remove(&user) {
                return Some(failure);
            }
            st.pool
                .handle(now, Event::GetNext { user })
                .err()
                .map(|error| Failure {
                    error,
                    retry: false,
                })
        });
        if let Some(failure) = refused {
            if !matches!(failure.error, Error::UnexpectedEvent { .. }) {
                self.done = true;
            }
            return Err(failure);
        }
        for action in answers {
            match action {
                Action::Resume { user: u, .. } if u == user => return Ok(()),
                Action::Fail {
                    user: u,
                    error,
                    retry,
                } if u == user => {
                    self.done = true;
                    return Err(Failure { error, retry });
                }
                _ => {}
            }
        }
        // An accepted GetNext is always answered by Resume or Fail; reaching
        // here would be a core bug, reported rather than passed over.
        debug_assert!(false, "GetNext for {user} got no answer");
        self.done = true;
        Err(Failure {
            error: Error::UnknownUser(user),
            retry: false,
        })
    }

    fn finish(&mut self) {
        self.finish_with(|user| Event::Release { user });
    }

    fn finish_with(&mut self, event: impl FnOnce(UserId) -> Event) {
        if self.done {
            return;
        }
        self.done = true;
        let user = self.user;
        self.driver.run(|st, now| {
            st.interrupted.remove(&user);
            // After shutdown or fork the user is already gone: harmless.
            let _ = st.pool.handle(now, event(user));
        });
    }
}

fn answer_for(user: UserId, answers: Vec<Action>) -> Option<Failure> {
    answers.into_iter().find_map(|a| match a {
        Action::Fail {
            user: u,
            error,
            retry,
        } if u == user => Some(Failure { error, retry }),
        _ => None,
    })
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.finish();
    }
}
