//! A real DNS server on 127.0.0.1 for DNS SRV tests: hickory-server on UDP
//! and TCP (same port, chosen by the OS) serving one zone the test writes in
//! master-file syntax and may replace mid-run, count queries of, or mute
//! (a server that stops answering).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use hickory_proto::op::{Header, HeaderCounts, MessageType, Metadata, OpCode};
use hickory_proto::rr::{LowerName, Name};
use hickory_proto::serialize::txt::Parser;
use hickory_server::net::runtime::{Time, TokioRuntimeProvider};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};

/// The zone every test server serves.
pub const ORIGIN: &str = "example.test.";

/// A zone with one SOA and an SRV record per `(priority, weight, port)`
/// under `label` (e.g. `_ldap._tcp`), every target `localhost.`.
pub fn zone(ttl: u32, label: &str, records: &[(u16, u16, u16)]) -> String {
    let mut z = format!(
        "$ORIGIN {ORIGIN}\n$TTL {ttl}\n\
         @ IN SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 1\n"
    );
    for (priority, weight, port) in records {
        z.push_str(&format!(
            "{label} IN SRV {priority} {weight} {port} localhost.\n"
        ));
    }
    z
}

/// [`zone`] for `_ldap._tcp` records.
pub fn ldap_zone(ttl: u32, records: &[(u16, u16, u16)]) -> String {
    zone(ttl, "_ldap._tcp", records)
}

/// What the DNS server serves, and what it saw.
struct DnsState {
    catalog: tokio::sync::RwLock<Catalog>,
    queries: AtomicU64,
    muted: AtomicBool,
}

#[derive(Clone)]
struct Handler(Arc<DnsState>);

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        self.0.queries.fetch_add(1, Ordering::SeqCst);
        if self.0.muted.load(Ordering::SeqCst) {
            // A DNS server that stopped answering: no response at all.
            return ResponseInfo::from(Header {
                metadata: Metadata::new(request.metadata.id, MessageType::Response, OpCode::Query),
                counts: HeaderCounts::default(),
            });
        }
        let catalog = self.0.catalog.read().await;
        catalog
            .handle_request::<R, T>(request, response_handle)
            .await
    }
}

fn catalog(text: &str) -> Catalog {
    let origin = Name::from_ascii(ORIGIN).unwrap();
    let (origin, records) = Parser::new(text, None, Some(origin))
        .parse()
        .unwrap_or_else(|e| panic!("zone does not parse: {e}\n{text}"));
    let handler = InMemoryZoneHandler::<TokioRuntimeProvider>::new(
        origin.clone(),
        records,
        ZoneType::Primary,
        AxfrPolicy::Deny,
    )
    .expect("zone");
    let mut c = Catalog::new();
    c.upsert(LowerName::new(&origin), vec![Arc::new(handler)]);
    c
}

/// A DNS server on 127.0.0.1 (UDP and TCP, same port) serving one zone.
pub struct DnsServer {
    /// Where it listens (UDP and TCP).
    pub addr: SocketAddr,
    state: Arc<DnsState>,
    server: hickory_server::Server<Handler>,
}

impl DnsServer {
    /// Starts serving `zone_text` (see [`zone`]).
    pub async fn start(zone_text: &str) -> DnsServer {
        let state = Arc::new(DnsState {
            catalog: tokio::sync::RwLock::new(catalog(zone_text)),
            queries: AtomicU64::new(0),
            muted: AtomicBool::new(false),
        });
        let mut server = hickory_server::Server::new(Handler(state.clone()));
        // TCP on the UDP socket's port; a few tries in case it is taken.
        let mut tries = 0;
        let (udp, tcp) = loop {
            let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            match tokio::net::TcpListener::bind(udp.local_addr().unwrap()).await {
                Ok(tcp) => break (udp, tcp),
                Err(_) if tries < 10 => tries += 1,
                Err(e) => panic!("no port free for both UDP and TCP: {e}"),
            }
        };
        let addr = udp.local_addr().unwrap();
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 16);
        DnsServer {
            addr,
            state,
            server,
        }
    }

    /// Serves `zone_text` from now on.
    pub async fn set_zone(&self, zone_text: &str) {
        *self.state.catalog.write().await = catalog(zone_text);
    }

    /// Stops answering (`true`) or answers again.
    pub fn mute(&self, on: bool) {
        self.state.muted.store(on, Ordering::SeqCst);
    }

    /// Queries received so far.
    pub fn queries(&self) -> u64 {
        self.state.queries.load(Ordering::SeqCst)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.server.shutdown_token().cancel();
    }
}
