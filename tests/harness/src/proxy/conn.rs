//! One proxied connection's task: forwards, holds, cuts or corrupts its
//! traffic as its mode says.

use super::*;

/// Closes `stream` with an RST instead of a FIN.
fn rst(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn connect_target(target: SocketAddr) -> io::Result<TcpStream> {
    let s = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect to proxy target"))??;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// Reads from `server` if there is one; never completes otherwise.
async fn read_opt(server: &mut Option<TcpStream>, buf: &mut [u8]) -> io::Result<usize> {
    match server {
        Some(s) => s.read(buf).await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `at`; never completes for `None`.
async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// How one connection ends.
enum End {
    /// A peer closed or failed: drop both sides.
    Closed,
    /// Orderly close of the client side (FIN), server side dropped.
    Fin,
    /// Reset the client; reset the server too.
    Reset,
}

/// Server bytes waiting to be written to the client.
pub(super) struct Out {
    due: Instant,
    data: Vec<u8>,
    pos: usize,
    /// Written one byte per this interval.
    drip: Option<Duration>,
}

/// One proxied connection.
pub(super) struct Conn {
    pub(super) id: ProxyConnId,
    pub(super) shared: Arc<Shared>,
    pub(super) stats: Arc<ConnStats>,
    pub(super) client: TcpStream,
    pub(super) server: Option<TcpStream>,
    /// The mode in force (also in `current`, for `connections()`).
    pub(super) mode: ProxyMode,
    pub(super) current: Arc<Mutex<ProxyMode>>,
    /// Modes set from outside.
    pub(super) mode_rx: watch::Receiver<ProxyMode>,
    pub(super) reset: watch::Receiver<u64>,
    pub(super) framer: Framer,
    /// Requests read from the client and not forwarded yet (held while stalled).
    pub(super) inbox: VecDeque<Frame>,
    pub(super) inbox_bytes: usize,
    pub(super) out: VecDeque<Out>,
    pub(super) server_eof: bool,
    pub(super) garbage_next_answer: bool,
    /// `CutAfterRequest` given to this connection: cut at its next request.
    pub(super) cut_next: bool,
    pub(super) request_fault_fired: bool,
}

impl Conn {
    pub(super) async fn serve(mut self) {
        let _ = self.client.set_nodelay(true);
        let end = self.run().await;
        match end {
            End::Closed => {}
            End::Fin => {
                self.server = None;
                let _ = self.client.shutdown().await;
                // Read (and drop) until the client closes too, so that unread
                // bytes do not turn the close into a reset.
                let mut buf = vec![0u8; BUF_SIZE];
                let drain =
                    async { while matches!(self.client.read(&mut buf).await, Ok(n) if n > 0) {} };
                tokio::select! {
                    biased;
                    _ = self.reset.changed() => rst(self.client),
                    _ = tokio::time::timeout(FIN_DRAIN, drain) => {}
                }
            }
            End::Reset => {
                if let Some(s) = self.server.take() {
                    rst(s);
                }
                rst(self.client);
            }
        }
    }

    async fn run(&mut self) -> End {
        self.mode_rx.mark_unchanged();
        let initial = self.mode;
        self.set(ProxyMode::Forward);
        match initial {
            // Connected lazily, or never.
            ProxyMode::Blackhole
            | ProxyMode::StallReads
            | ProxyMode::Refuse
            | ProxyMode::Close
            | ProxyMode::Notice => {}
            _ => {
                if let Err(end) = self.ensure_server().await {
                    return end;
                }
            }
        }
        if let Some(end) = self.enter_now(initial).await {
            return end;
        }
        let mut cbuf = vec![0u8; BUF_SIZE];
        let mut sbuf = vec![0u8; BUF_SIZE];
        loop {
            if let Some(end) = self.process_inbox().await {
                return end;
            }
            let read_client = if self.mode == ProxyMode::StallReads {
                self.inbox_bytes < STALL_HOLD_LIMIT
            } else {
                self.inbox.is_empty()
            };
            let read_server =
                self.server.is_some() && !self.server_eof && self.mode != ProxyMode::StallServer;
            let next_out = self.out.front().map(|o| o.due);
            tokio::select! {
                biased;
                // A reset, or the proxy was dropped (sender gone): either way, RST.
                _ = self.reset.changed() => return End::Reset,
                changed = self.mode_rx.changed() => {
                    if changed.is_err() {
                        return End::Reset;
                    }
                    let mode = *self.mode_rx.borrow_and_update();
                    if let Some(end) = self.enter_now(mode).await {
                        return end;
                    }
                }
                read = self.client.read(&mut cbuf), if read_client => {
                    let n = match read {
                        Ok(0) | Err(_) => return End::Closed,
                        Ok(n) => n,
                    };
                    self.framer.buf.extend_from_slice(&cbuf[..n]);
                    while let Some((bytes, kind)) = self.framer.next() {
                        self.shared.record(self.id, kind, &bytes);
                        self.stats.requests.fetch_add(1, Ordering::SeqCst);
                        self.inbox_bytes += bytes.len();
                        self.inbox.push_back(Frame { bytes, kind, checked: false });
                    }
                }
                read = read_opt(&mut self.server, &mut sbuf), if read_server => {
                    match read {
                        Ok(0) | Err(_) => {
                            self.server_eof = true;
                            if self.out.is_empty() {
                                return End::Closed;
                            }
                        }
                        Ok(n) => {
                            let data = sbuf[..n].to_vec();
                            if let Some(end) = self.on_server_data(data).await {
                                return end;
                            }
                        }
                    }
                }
                _ = sleep_opt(next_out) => {
                    if let Some(end) = self.flush_due().await {
                        return end;
                    }
                    if self.server_eof && self.out.is_empty() {
                        return End::Closed;
                    }
                }
            }
        }
    }

    /// Puts `mode` in force.
    fn set(&mut self, mode: ProxyMode) {
        self.mode = mode;
        *lock(&self.current) = mode;
    }

    /// `mode` set on this connection now.
    async fn enter_now(&mut self, mode: ProxyMode) -> Option<End> {
        match mode {
            ProxyMode::Refuse => return Some(End::Reset),
            ProxyMode::Close => return Some(End::Fin),
            ProxyMode::CutAfterRequest => {
                self.cut_next = true;
                self.set(ProxyMode::Forward);
                return None;
            }
            ProxyMode::Garbage => {
                self.set(mode);
                return self.write_client(GARBAGE).await;
            }
            ProxyMode::Notice => {
                return Some(
                    self.write_client(NOTICE_OF_DISCONNECTION)
                        .await
                        .unwrap_or(End::Fin),
                );
            }
            ProxyMode::Drip(_) | ProxyMode::Delay(_) | ProxyMode::StallServer => {}
            ProxyMode::Blackhole => self.out.clear(),
            ProxyMode::Forward | ProxyMode::StallReads => {
                // Full speed again for what is queued.
                let now = Instant::now();
                for o in &mut self.out {
                    o.due = now;
                    o.drip = None;
                }
            }
        }
        self.set(mode);
        None
    }

    /// Handles the requests read so far, unless stalled.
    async fn process_inbox(&mut self) -> Option<End> {
        while self.mode != ProxyMode::StallReads {
            let mut frame = self.inbox.pop_front()?;
            self.inbox_bytes -= frame.bytes.len();
            if !frame.checked {
                frame.checked = true;
                if let Some((mode, fired)) = self.trigger(frame.kind) {
                    if let Some(end) = self.enter_at_request(mode, frame, fired).await {
                        return Some(end);
                    }
                    continue;
                }
            }
            match self.mode {
                ProxyMode::Blackhole => {}
                _ => {
                    if let Some(end) = self.send_to_server(&frame.bytes).await {
                        return Some(end);
                    }
                }
            }
        }
        None
    }

    /// The mode a request of `kind` switches this connection to, if any, and
    /// whom to tell once it did.
    fn trigger(&mut self, kind: RequestKind) -> Option<(ProxyMode, Option<Fired>)> {
        if self.cut_next {
            self.cut_next = false;
            return Some((ProxyMode::Refuse, None));
        }
        if let Some((mode, fired)) = self.shared.claim_arm(kind) {
            return Some((mode, Some(fired)));
        }
        if !self.request_fault_fired {
            let fault = *lock(&self.shared.request_fault);
            if let Some((want, mode)) = fault
                && request_matches(want, kind)
            {
                self.request_fault_fired = true;
                return Some((mode, None));
            }
        }
        None
    }

    /// `mode` takes effect at the request `frame`; `fired` is told once it did
    /// (after the switch, so that a mode set in answer is not overwritten).
    async fn enter_at_request(
        &mut self,
        mode: ProxyMode,
        frame: Frame,
        fired: Option<Fired>,
    ) -> Option<End> {
        let id = self.id;
        let tell = move || {
            if let Some(f) = fired {
                f.send_replace(Some(id));
            }
        };
        match mode {
            ProxyMode::Notice => {
                tell();
                Some(
                    self.write_client(NOTICE_OF_DISCONNECTION)
                        .await
                        .unwrap_or(End::Fin),
                )
            }
            ProxyMode::Refuse | ProxyMode::CutAfterRequest | ProxyMode::Close => {
                let end = self.send_to_server(&frame.bytes).await;
                tell();
                if end.is_some() {
                    return end;
                }
                // Let the server finish (its answer proves the request was
                // processed), swallow the answer, then cut the client.
                if let Some(s) = self.server.as_mut() {
                    let mut buf = vec![0u8; BUF_SIZE];
                    let _ = tokio::time::timeout(CUT_ANSWER_WAIT, s.read(&mut buf)).await;
                }
                Some(if mode == ProxyMode::Close {
                    End::Fin
                } else {
                    End::Reset
                })
            }
            ProxyMode::Blackhole => {
                self.set(mode);
                tell();
                None
            }
            ProxyMode::StallReads => {
                self.set(mode);
                self.inbox_bytes += frame.bytes.len();
                self.inbox.push_front(frame);
                tell();
                None
            }
            ProxyMode::Garbage => {
                self.set(mode);
                self.garbage_next_answer = true;
                tell();
                self.send_to_server(&frame.bytes).await
            }
            ProxyMode::Drip(_)
            | ProxyMode::Delay(_)
            | ProxyMode::Forward
            | ProxyMode::StallServer => {
                self.set(mode);
                tell();
                self.send_to_server(&frame.bytes).await
            }
        }
    }

    /// Connects to the target if not yet connected.
    async fn ensure_server(&mut self) -> Result<(), End> {
        if self.server.is_none() {
            match connect_target(self.shared.target).await {
                Ok(s) => self.server = Some(s),
                Err(_) => return Err(End::Reset),
            }
        }
        Ok(())
    }

    /// Forwards client bytes to the server (connecting first if needed).
    async fn send_to_server(&mut self, data: &[u8]) -> Option<End> {
        if let Err(end) = self.ensure_server().await {
            return Some(end);
        }
        let server = self.server.as_mut().expect("connected above");
        let end = write_or_reset(server, data, &mut self.reset).await;
        if end.is_none() {
            self.stats
                .to_server
                .fetch_add(data.len() as u64, Ordering::SeqCst);
        }
        end
    }

    /// Server bytes, handled according to the mode.
    async fn on_server_data(&mut self, data: Vec<u8>) -> Option<End> {
        let data = if std::mem::take(&mut self.garbage_next_answer) {
            GARBAGE.to_vec()
        } else {
            data
        };
        let now = Instant::now();
        match self.mode {
            ProxyMode::Blackhole => None,
            ProxyMode::Drip(every) => {
                let due = self.out.back().map_or(now, |o| o.due.max(now)) + every;
                self.out.push_back(Out {
                    due,
                    data,
                    pos: 0,
                    drip: Some(every),
                });
                None
            }
            ProxyMode::Delay(d) => {
                self.out.push_back(Out {
                    due: now + d,
                    data,
                    pos: 0,
                    drip: None,
                });
                None
            }
            _ if !self.out.is_empty() => {
                // Keep the order behind what is still queued.
                let due = self.out.back().map_or(now, |o| o.due);
                self.out.push_back(Out {
                    due,
                    data,
                    pos: 0,
                    drip: None,
                });
                None
            }
            _ => self.write_client(&data).await,
        }
    }

    /// Writes the queued server bytes that are due (one byte of a dripping chunk).
    async fn flush_due(&mut self) -> Option<End> {
        let now = Instant::now();
        while self.out.front().is_some_and(|o| o.due <= now) {
            let mut front = self.out.pop_front().expect("checked");
            match front.drip {
                Some(every) => {
                    let byte = [front.data[front.pos]];
                    front.pos += 1;
                    if front.pos < front.data.len() {
                        front.due = now + every;
                        self.out.push_front(front);
                    } else if let Some(next) = self.out.front_mut() {
                        next.due = next.due.max(now + every);
                    }
                    return self.write_client(&byte).await;
                }
                None => {
                    if let Some(end) = self.write_client(&front.data[front.pos..]).await {
                        return Some(end);
                    }
                }
            }
        }
        None
    }

    async fn write_client(&mut self, data: &[u8]) -> Option<End> {
        let end = write_or_reset(&mut self.client, data, &mut self.reset).await;
        if end.is_none() {
            self.stats
                .to_client
                .fetch_add(data.len() as u64, Ordering::SeqCst);
        }
        end
    }
}

/// Writes `data` to `to` unless a reset (or proxy drop) comes first.
async fn write_or_reset(
    to: &mut TcpStream,
    data: &[u8],
    reset: &mut watch::Receiver<u64>,
) -> Option<End> {
    tokio::select! {
        biased;
        _ = reset.changed() => Some(End::Reset),
        written = to.write_all(data) => match written {
            Ok(()) => None,
            Err(_) => Some(End::Closed),
        },
    }
}
