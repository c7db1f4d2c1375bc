//! The modes against a loopback echo server.

use super::frame::{Framed, frame_len, message_kind};
use super::*;

const WAIT: Duration = Duration::from_secs(5);

/// An echo server on 127.0.0.1; returns its address.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; BUF_SIZE];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

async fn proxy() -> FaultProxy {
    FaultProxy::start(echo_server().await).await.unwrap()
}

async fn connect(p: &FaultProxy) -> TcpStream {
    let s = TcpStream::connect(p.addr()).await.unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// An LDAP-shaped message: SEQUENCE { INTEGER id, [op tag] body }.
fn ldap_msg(id: u8, op_tag: u8, body: &[u8]) -> Vec<u8> {
    let mut inner = vec![0x02, 0x01, id, op_tag, body.len() as u8];
    inner.extend_from_slice(body);
    let mut msg = vec![0x30, inner.len() as u8];
    msg.extend_from_slice(&inner);
    msg
}

fn search(id: u8, body: &[u8]) -> Vec<u8> {
    ldap_msg(id, 0x63, body)
}

fn bind(id: u8) -> Vec<u8> {
    ldap_msg(id, 0x60, b"cn=x")
}

/// Reads exactly `n` bytes within `WAIT`.
async fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(WAIT, s.read_exact(&mut buf))
        .await
        .expect("read timed out")
        .expect("read failed");
    buf
}

/// Asserts nothing arrives on `s` for `d` (the connection stays up).
async fn nothing_for(s: &mut TcpStream, d: Duration) {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(d, s.read(&mut buf)).await {
        Err(_) => {}
        Ok(r) => panic!("expected silence, got {r:?} {:?}", &buf[..4]),
    }
}

/// What the next read sees: data, EOF (FIN) or an error (RST).
async fn read_outcome(s: &mut TcpStream) -> io::Result<usize> {
    let mut buf = [0u8; 256];
    tokio::time::timeout(WAIT, s.read(&mut buf))
        .await
        .expect("no EOF or error within the wait")
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn forward_frames_counts_and_timestamps() {
    let p = proxy().await;
    let before = Instant::now();
    let mut c = connect(&p).await;
    let mut msgs = search(1, b"(uid=user1)");
    msgs.extend(bind(2));
    // Split a message across two writes: still framed as one.
    c.write_all(&msgs[..3]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    c.write_all(&msgs[3..]).await.unwrap();
    assert_eq!(read_n(&mut c, msgs.len()).await, msgs);
    assert_eq!(p.accepted(), 1);
    assert_eq!(p.accepted_since(before), 1);
    assert_eq!(p.accept_times().len(), 1);
    assert_eq!(p.request_count(Some(RequestKind::Search), b""), 1);
    assert_eq!(p.request_count(Some(RequestKind::Search), b"uid=user1"), 1);
    assert_eq!(p.request_count(Some(RequestKind::Search), b"uid=user2"), 0);
    assert_eq!(p.request_count(Some(RequestKind::Bind), b""), 1);
    assert_eq!(p.request_count(None, b""), 2);
    let conns = p.connections();
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].requests, 2);
    assert_eq!(conns[0].bytes_to_server, msgs.len() as u64);
    assert_eq!(conns[0].bytes_to_client, msgs.len() as u64);
    assert_eq!(conns[0].mode, ProxyMode::Forward);
    // Non-LDAP bytes pass unframed.
    let mut d = connect(&p).await;
    d.write_all(b"hello").await.unwrap();
    assert_eq!(read_n(&mut d, 5).await, b"hello");
    assert_eq!(p.request_count(Some(RequestKind::Other), b"hello"), 1);
    drop((c, d));
    eventually("connections closed", || p.live() == 0).await;
    assert!(p.connections().is_empty());
}

#[tokio::test]
async fn reset_and_close_at_accept_and_per_connection() {
    let p = proxy().await;
    // Reset at accept: RST.
    p.set_mode(ProxyMode::RESET);
    let mut c = connect(&p).await;
    let err = read_outcome(&mut c).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
    // Close at accept: FIN (EOF, not an error).
    p.set_mode(ProxyMode::Close);
    let mut c = connect(&p).await;
    assert_eq!(read_outcome(&mut c).await.unwrap(), 0, "EOF");
    drop(c);
    eventually("the closed connections are gone", || p.live() == 0).await;
    // Per connection: only the chosen one closes.
    p.set_mode(ProxyMode::Forward);
    let mut a = connect(&p).await;
    let mut b = connect(&p).await;
    a.write_all(b"a").await.unwrap();
    b.write_all(b"b").await.unwrap();
    read_n(&mut a, 1).await;
    read_n(&mut b, 1).await;
    let ids: Vec<_> = p.connections().iter().map(|c| c.id).collect();
    assert_eq!(ids.len(), 2);
    assert!(p.set_conn_mode(ids[0], ProxyMode::Close));
    assert_eq!(read_outcome(&mut a).await.unwrap(), 0, "a got FIN");
    drop(a);
    b.write_all(b"still").await.unwrap();
    assert_eq!(read_n(&mut b, 5).await, b"still");
    assert!(p.set_conn_mode(ids[1], ProxyMode::Refuse));
    let err = read_outcome(&mut b).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
    eventually("connections gone", || p.live() == 0).await;
    assert!(!p.set_conn_mode(ids[0], ProxyMode::Forward), "gone");
}

#[tokio::test]
async fn stall_reads_holds_requests_backs_up_writes_and_releases() {
    let p = proxy().await;
    let mut c = connect(&p).await;
    let warm = search(1, b"warm");
    c.write_all(&warm).await.unwrap();
    read_n(&mut c, warm.len()).await;
    let id = p.connections()[0].id;
    p.set_conn_mode(id, ProxyMode::StallReads);
    eventually("stalled", || {
        p.connections()[0].mode == ProxyMode::StallReads
    })
    .await;
    let msg = search(3, b"held");
    c.write_all(&msg).await.unwrap();
    nothing_for(&mut c, Duration::from_millis(200)).await;
    assert_eq!(
        p.request_count(Some(RequestKind::Search), b"held"),
        1,
        "seen"
    );
    assert_eq!(
        p.connections()[0].bytes_to_server,
        warm.len() as u64,
        "but not forwarded"
    );
    // Released: the held request goes through.
    p.set_conn_mode(id, ProxyMode::Forward);
    assert_eq!(read_n(&mut c, msg.len()).await, msg);

    // Writes back up: 32 MiB cannot all be buffered, and TCP stays up.
    p.set_conn_mode(id, ProxyMode::StallReads);
    eventually("stalled", || {
        p.connections()[0].mode == ProxyMode::StallReads
    })
    .await;
    let (mut rd, mut wr) = c.into_split();
    let writer = tokio::spawn(async move {
        let big = vec![0u8; 32 * 1024 * 1024];
        wr.write_all(&big).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!writer.is_finished(), "the client's writes back up");
    let sent = p.connections()[0].bytes_to_server;
    assert_eq!(
        sent,
        (warm.len() + msg.len()) as u64,
        "nothing more forwarded"
    );
    let mut buf = [0u8; 8];
    assert!(
        tokio::time::timeout(Duration::from_millis(100), rd.read(&mut buf))
            .await
            .is_err(),
        "no EOF, no reset: TCP is up"
    );
    writer.abort();
    drop(rd);
    // Closing the proxy side resets what is left.
    p.reset_all();
    eventually("gone", || p.live() == 0).await;
}

#[tokio::test]
async fn blackhole_discards_both_ways() {
    let p = proxy().await;
    p.set_mode(ProxyMode::Blackhole);
    let mut c = connect(&p).await;
    c.write_all(&search(1, b"lost")).await.unwrap();
    nothing_for(&mut c, Duration::from_millis(200)).await;
    assert_eq!(p.request_count(Some(RequestKind::Search), b"lost"), 1);
    assert_eq!(p.connections()[0].bytes_to_server, 0);
    p.set_mode(ProxyMode::Forward);
    c.write_all(b"back").await.unwrap();
    assert_eq!(read_n(&mut c, 4).await, b"back", "forwarding again");
}

#[tokio::test]
async fn drip_sends_one_byte_per_interval() {
    let p = proxy().await;
    let mut c = connect(&p).await;
    let id = {
        c.write_all(b"w").await.unwrap();
        read_n(&mut c, 1).await;
        p.connections()[0].id
    };
    let every = Duration::from_millis(30);
    p.set_conn_mode(id, ProxyMode::Drip(every));
    eventually("dripping", || {
        p.connections()[0].mode == ProxyMode::Drip(every)
    })
    .await;
    let t = Instant::now();
    c.write_all(b"0123456789").await.unwrap();
    let mut got = Vec::new();
    let mut reads = 0;
    while got.len() < 10 {
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(WAIT, c.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
        reads += 1;
    }
    assert_eq!(got, b"0123456789");
    // Ten bytes at one per 30 ms cannot arrive sooner than 300 ms.
    assert!(t.elapsed() >= every * 10, "{:?}", t.elapsed());
    assert!(reads >= 2, "bytes came in pieces");
}

#[tokio::test]
async fn delay_holds_each_answer() {
    let p = proxy().await;
    let d = Duration::from_millis(150);
    p.set_mode(ProxyMode::Delay(d));
    let mut c = connect(&p).await;
    let t = Instant::now();
    c.write_all(b"ping").await.unwrap();
    assert_eq!(read_n(&mut c, 4).await, b"ping");
    assert!(t.elapsed() >= d, "{:?}", t.elapsed());
    p.set_mode(ProxyMode::Forward);
    c.write_all(b"pong").await.unwrap();
    assert_eq!(read_n(&mut c, 4).await, b"pong");
}

#[tokio::test]
async fn garbage_now_and_in_place_of_an_answer() {
    let p = proxy().await;
    let mut c = connect(&p).await;
    let warm = search(1, b"warm");
    c.write_all(&warm).await.unwrap();
    read_n(&mut c, warm.len()).await;
    let id = p.connections()[0].id;
    p.set_conn_mode(id, ProxyMode::Garbage);
    assert_eq!(read_n(&mut c, GARBAGE.len()).await, GARBAGE, "sent at once");
    // At a request: the answer is replaced.
    let mut armed = p.arm_next_request(Some(RequestKind::Search), ProxyMode::Garbage);
    assert_eq!(armed.conn(), None);
    let msg = search(4, b"(cn=*)");
    c.write_all(&msg).await.unwrap();
    assert_eq!(read_n(&mut c, GARBAGE.len()).await, GARBAGE);
    assert_eq!(armed.wait(WAIT).await.unwrap(), id);
    // Then forwarding.
    c.write_all(&msg).await.unwrap();
    assert_eq!(read_n(&mut c, msg.len()).await, msg);
}

#[tokio::test]
async fn notice_sends_a_notice_of_disconnection_then_closes() {
    let p = proxy().await;
    let mut c = connect(&p).await;
    let warm = search(1, b"warm");
    c.write_all(&warm).await.unwrap();
    read_n(&mut c, warm.len()).await;
    let id = p.connections()[0].id;
    p.set_conn_mode(id, ProxyMode::Notice);
    assert_eq!(
        read_n(&mut c, NOTICE_OF_DISCONNECTION.len()).await,
        NOTICE_OF_DISCONNECTION
    );
    let mut rest = Vec::new();
    let n = tokio::time::timeout(WAIT, c.read_to_end(&mut rest))
        .await
        .expect("closed within the wait")
        .expect("an orderly close, not a reset");
    assert_eq!(n, 0, "nothing after the notice: {rest:?}");
    // Its BER lengths add up: one LDAPMessage, nothing trailing.
    assert_eq!(
        usize::from(NOTICE_OF_DISCONNECTION[1]) + 2,
        NOTICE_OF_DISCONNECTION.len()
    );
    assert_eq!(
        usize::from(NOTICE_OF_DISCONNECTION[6]) + 7,
        NOTICE_OF_DISCONNECTION.len()
    );
}

#[tokio::test]
async fn armed_faults_hit_one_request_and_request_faults_every_connection() {
    let p = proxy().await;
    let mut a = connect(&p).await;
    let mut b = connect(&p).await;
    // One shot: the first bind (on b) is cut after the server answered.
    let mut armed = p.arm_next_request(Some(RequestKind::Bind), ProxyMode::Refuse);
    a.write_all(&search(1, b"s")).await.unwrap();
    read_n(&mut a, search(1, b"s").len()).await;
    b.write_all(&bind(1)).await.unwrap();
    let err = read_outcome(&mut b).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
    let hit = armed.wait(WAIT).await.unwrap();
    assert!(!p.connections().iter().any(|c| c.id == hit), "b is gone");
    a.write_all(&bind(2)).await.unwrap();
    assert_eq!(read_n(&mut a, bind(2).len()).await, bind(2), "one shot");

    // Every connection, at its first bind: FIN after the answer.
    p.set_request_fault(Some(RequestKind::Bind), ProxyMode::Close);
    for _ in 0..2 {
        let mut c = connect(&p).await;
        c.write_all(&search(1, b"s")).await.unwrap();
        read_n(&mut c, search(1, b"s").len()).await;
        c.write_all(&bind(2)).await.unwrap();
        assert_eq!(
            read_outcome(&mut c).await.unwrap(),
            0,
            "FIN, answer swallowed"
        );
    }
    // a already sent a bind before the fault was set, but this is its first
    // bind since: it is closed too.
    a.write_all(&bind(3)).await.unwrap();
    assert_eq!(read_outcome(&mut a).await.unwrap(), 0);
    p.clear_request_fault();
    let mut c = connect(&p).await;
    c.write_all(&bind(1)).await.unwrap();
    assert_eq!(read_n(&mut c, bind(1).len()).await, bind(1), "cleared");

    // Hold a request, then release it.
    let mut armed = p.arm_next_request(Some(RequestKind::Search), ProxyMode::StallReads);
    c.write_all(&search(9, b"hold")).await.unwrap();
    let id = armed.wait(WAIT).await.unwrap();
    nothing_for(&mut c, Duration::from_millis(100)).await;
    p.set_conn_mode(id, ProxyMode::Forward);
    assert_eq!(
        read_n(&mut c, search(9, b"hold").len()).await,
        search(9, b"hold")
    );
    assert_eq!(p.request_count(Some(RequestKind::Search), b"hold"), 1);
}

#[tokio::test]
async fn cut_after_request_is_one_shot_and_reported() {
    let p = proxy().await;
    let mut c = connect(&p).await;
    p.set_mode(ProxyMode::CutAfterRequest);
    assert_eq!(p.mode(), ProxyMode::CutAfterRequest);
    c.write_all(b"anything").await.unwrap();
    let err = read_outcome(&mut c).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
    assert_eq!(p.mode(), ProxyMode::Forward, "one shot");
    let mut d = connect(&p).await;
    d.write_all(b"ok").await.unwrap();
    assert_eq!(read_n(&mut d, 2).await, b"ok");
    // Disarmed by another set_mode.
    p.set_mode(ProxyMode::CutAfterRequest);
    p.set_mode(ProxyMode::Forward);
    d.write_all(b"ok").await.unwrap();
    assert_eq!(read_n(&mut d, 2).await, b"ok");
}

#[tokio::test]
async fn frame_lengths() {
    assert!(matches!(frame_len(&[0x30]), Framed::Incomplete));
    assert!(matches!(frame_len(&[0x30, 0x03, 2, 1]), Framed::Incomplete));
    assert!(matches!(frame_len(&[0x30, 0x01, 2]), Framed::Complete(3)));
    assert!(matches!(
        frame_len(&[0x30, 0x81, 1, 2]),
        Framed::Complete(4)
    ));
    assert!(matches!(frame_len(&[0x30, 0x82, 1]), Framed::Incomplete));
    assert!(matches!(frame_len(&[0x30, 0x80]), Framed::NotLdap));
    assert!(matches!(frame_len(b"GET /"), Framed::NotLdap));
    assert_eq!(message_kind(&search(1, b"x")), RequestKind::Search);
    assert_eq!(message_kind(&ldap_msg(1, 0x42, b"")), RequestKind::Unbind);
    assert_eq!(message_kind(&[0x30, 0x01, 0x05]), RequestKind::Other);
}
