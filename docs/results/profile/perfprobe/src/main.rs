//! Client CPU per operation: ldapmux (defaults) vs raw ldap3 on one shared
//! connection, alternating windows in one run; and a paired c1 latency; and
//! a plain loop for perf.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, StdStream};
use ldapmux_harness::{PEOPLE_BASE, Slapd};

const ATTRS: [&str; 2] = ["cn", "mail"];
const USERS: u64 = 10_000;

struct Xs(u64);
impl Xs {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

#[allow(dead_code)]
fn cpu_us() -> f64 {
    rusage().0
}

/// (CPU µs, context switches voluntary + involuntary)
fn rusage() -> (f64, f64) {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 * 1e6 + tv.tv_usec as f64;
    (
        t(ru.ru_utime) + t(ru.ru_stime),
        (ru.ru_nvcsw + ru.ru_nivcsw) as f64,
    )
}

async fn connect_raw(
    url: &str,
    addr: SocketAddr,
) -> (Ldap, tokio::task::JoinHandle<ldap3::result::Result<()>>) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let settings =
        LdapConnSettings::new().set_std_stream(StdStream::Tcp(stream.into_std().unwrap()));
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, url).await.unwrap();
    let drive = tokio::spawn(conn.drive());
    ldap.simple_bind("", "").await.unwrap().success().unwrap();
    (ldap, drive)
}

async fn raw_search(ldap: &mut Ldap, filter: &str) -> usize {
    let (entries, _) = ldap
        .search(PEOPLE_BASE, Scope::OneLevel, filter, ATTRS.to_vec())
        .await
        .unwrap()
        .success()
        .unwrap();
    entries.into_iter().map(SearchEntry::construct).count()
}

#[derive(Clone)]
enum Who {
    Raw(Ldap),
    Mux(ldapmux::Pool),
}

impl Who {
    async fn search(&mut self, filter: &str) -> usize {
        match self {
            Who::Raw(l) => raw_search(l, filter).await,
            Who::Mux(p) => p
                .search(PEOPLE_BASE, Scope::OneLevel, filter, &ATTRS)
                .await
                .unwrap()
                .len(),
        }
    }
}

/// One window: `conc` tasks loop for warm-up + `secs`; returns (ops/s, client µs/op).
async fn window(
    slapd: &Slapd,
    mux: bool,
    conc: usize,
    warm: f64,
    secs: f64,
    seed: u64,
) -> (f64, f64) {
    let (who, drive) = if mux {
        let pool = ldapmux::Pool::builder()
            .server(slapd.url())
            .build()
            .unwrap();
        (Who::Mux(pool), None)
    } else {
        let (l, d) = connect_raw(&slapd.url(), slapd.addr()).await;
        (Who::Raw(l), Some(d))
    };
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let measuring = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..conc {
        let mut who = who.clone();
        let (stop, count, measuring) = (stop.clone(), count.clone(), measuring.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Xs((seed << 16 | i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let mut filter = String::with_capacity(24);
            while !stop.load(Ordering::Relaxed) {
                filter.clear();
                use std::fmt::Write as _;
                let _ = write!(filter, "(uid=user{})", rng.next() % USERS);
                let n = who.search(&filter).await;
                assert_eq!(n, 1);
                if measuring.load(Ordering::Relaxed) {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(warm)).await;
    measuring.store(true, Ordering::Relaxed);
    let (t0, (c0, s0)) = (Instant::now(), rusage());
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let ((c1, s1), el) = (rusage(), t0.elapsed().as_secs_f64());
    measuring.store(false, Ordering::Relaxed);
    let n = count.load(Ordering::Relaxed) as f64;
    if std::env::var_os("CSW").is_some() {
        println!(
            "  window mux={mux} conc={conc} csw_per_op={:.2}",
            (s1 - s0) / n
        );
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    match who {
        Who::Mux(p) => {
            p.shutdown().await;
        }
        Who::Raw(mut l) => {
            let _ = l.unbind().await;
            drop(l);
            let _ = drive.unwrap().await;
        }
    }
    (n / el, (c1 - c0) / n)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

async fn paired(slapd: &Slapd, n: usize) {
    let pool = ldapmux::Pool::builder()
        .server(slapd.url())
        .build()
        .unwrap();
    let (mut ldap, _d) = connect_raw(&slapd.url(), slapd.addr()).await;
    let mut rng = Xs(4242 * 0x9E37_79B9_7F4A_7C15 | 1);
    let warm = (n / 10).max(50);
    let (mut ours, mut raw) = (Vec::new(), Vec::new());
    for i in 0..warm + n {
        let filter = format!("(uid=user{})", rng.next() % USERS);
        let mut mux = Who::Mux(pool.clone());
        let (a, b);
        if i % 2 == 0 {
            let t = Instant::now();
            mux.search(&filter).await;
            a = t.elapsed();
            let t = Instant::now();
            raw_search(&mut ldap, &filter).await;
            b = t.elapsed();
        } else {
            let t = Instant::now();
            raw_search(&mut ldap, &filter).await;
            b = t.elapsed();
            let t = Instant::now();
            mux.search(&filter).await;
            a = t.elapsed();
        }
        if i >= warm {
            ours.push(a.as_nanos() as f64 / 1e3);
            raw.push(b.as_nanos() as f64 / 1e3);
        }
    }
    let (po, pr) = (median(&mut ours), median(&mut raw));
    println!(
        "paired n={n} ldapmux_p50_us={po:.1} raw_p50_us={pr:.1} added_p50_us={:.1}",
        po - pr
    );
    pool.shutdown().await;
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("compare");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let slapd = Slapd::builder()
        .users(USERS as usize)
        .threads(4)
        .start()
        .unwrap();
    rt.block_on(async {
        match mode {
            "compare" => {
                let reps: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
                let secs: f64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3.0);
                let concs: Vec<usize> = args
                    .get(4)
                    .map(|s| s.split(',').map(|x| x.parse().unwrap()).collect())
                    .unwrap_or(vec![1, 64]);
                for conc in concs {
                    let (mut rc, mut mc, mut ratio, mut ro, mut mo) = (vec![], vec![], vec![], vec![], vec![]);
                    for r in 0..reps {
                        let order = if r % 2 == 0 { [false, true] } else { [true, false] };
                        let mut got = [(0.0, 0.0); 2];
                        for mux in order {
                            got[mux as usize] = window(&slapd, mux, conc, 1.0, secs, r as u64).await;
                        }
                        let ((rops, rcpu), (mops, mcpu)) = (got[0], got[1]);
                        println!("conc={conc} rep={r} raw_ops={rops:.0} raw_us_per_op={rcpu:.1} mux_ops={mops:.0} mux_us_per_op={mcpu:.1} ratio={:.3}", mcpu / rcpu);
                        rc.push(rcpu); mc.push(mcpu); ratio.push(mcpu / rcpu); ro.push(rops); mo.push(mops);
                    }
                    println!("SUMMARY conc={conc} reps={reps} raw_us_per_op_med={:.1} mux_us_per_op_med={:.1} ratio_med={:.3} raw_ops_med={:.0} mux_ops_med={:.0}",
                        median(&mut rc), median(&mut mc), median(&mut ratio), median(&mut ro), median(&mut mo));
                }
            }
            "paired" => {
                let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20_000);
                let reps: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
                for _ in 0..reps {
                    paired(&slapd, n).await;
                }
            }
            "profile" => {
                let kind = args.get(2).map(String::as_str).unwrap_or("mux");
                let conc: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
                let secs: f64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(10.0);
                let (ops, cpu) = window(&slapd, kind == "mux", conc, 1.0, secs, 7).await;
                println!("profile kind={kind} conc={conc} ops={ops:.0} us_per_op={cpu:.1}");
            }
            "count" => {
                // count KIND CONC N: N searches in all (after 200 warm-up ops), for callgrind / strace differences.
                let kind = args.get(2).map(String::as_str).unwrap_or("mux");
                let conc: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
                let n: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(1000);
                let (who, _drive) = if kind == "mux" {
                    (Who::Mux(ldapmux::Pool::builder().server(slapd.url()).build().unwrap()), None)
                } else {
                    let (l, d) = connect_raw(&slapd.url(), slapd.addr()).await;
                    (Who::Raw(l), Some(d))
                };
                let run = |per: usize, seed: u64| {
                    let mut tasks = Vec::new();
                    for i in 0..conc {
                        let mut who = who.clone();
                        tasks.push(tokio::spawn(async move {
                            let mut rng = Xs((seed << 16 | i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
                            let mut filter = String::with_capacity(24);
                            for _ in 0..per {
                                filter.clear();
                                use std::fmt::Write as _;
                                let _ = write!(filter, "(uid=user{})", rng.next() % USERS);
                                assert_eq!(who.search(&filter).await, 1);
                            }
                        }));
                    }
                    tasks
                };
                for t in run(200usize.div_ceil(conc), 1) {
                    t.await.unwrap();
                }
                let c0 = rusage();
                for t in run(n / conc, 2) {
                    t.await.unwrap();
                }
                let c1 = rusage();
                println!("count kind={kind} conc={conc} n={n} us_per_op={:.1} csw_per_op={:.2}", (c1.0 - c0.0) / n as f64, (c1.1 - c0.1) / n as f64);
                if let Who::Mux(p) = who {
                    p.shutdown().await;
                }
            }
            _ => panic!("mode"),
        }
    });
}
