//! Figures of the run that are not the pool's answers: process stalls,
//! resident memory, tasks and descriptors, the pool's view of each server in
//! the timeline, and the summary printed at the end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ldapmux::{Health, Pool, Status};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::LATE_SLACK;
use crate::checks::{LateCalls, Shutdown, WriteFigures};
use crate::faults::Schedule;
use crate::record::{Run, WriteRecord};

/// Records every time a plain OS thread, asking to sleep 10 ms, is not woken
/// for over 200 ms more: the machine did not run this process (here: other
/// jobs saturating the two cores).
pub struct StallWatch {
    stop: CancellationToken,
    thread: std::thread::JoinHandle<()>,
}

impl StallWatch {
    /// Starts the watching thread; it writes into `run.stalls`.
    pub fn start(run: Arc<Run>) -> StallWatch {
        let stop = CancellationToken::new();
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let tick = Duration::from_millis(10);
                while !stop.is_cancelled() {
                    let before = run.at();
                    std::thread::sleep(tick);
                    let overslept = run.at().saturating_sub(before + tick);
                    if overslept > Duration::from_millis(200) {
                        run.stalls.lock().unwrap().push((before + tick, overslept));
                        run.event(format!(
                            "the test process was not scheduled for {} ms",
                            overslept.as_millis()
                        ));
                    }
                }
            })
        };
        StallWatch { stop, thread }
    }

    /// Stops the thread and waits for it.
    pub fn stop(self) {
        self.stop.cancel();
        self.thread.join().expect("stall watcher");
    }
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// The process's live tokio tasks (this test's runtime) and open descriptors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessCounts {
    /// Tokio tasks alive in the current runtime.
    pub tasks: usize,
    /// Entries in `/proc/self/fd`.
    pub fds: usize,
}

impl ProcessCounts {
    /// The counts now.
    pub fn now() -> ProcessCounts {
        ProcessCounts {
            tasks: tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks(),
            fds: std::fs::read_dir("/proc/self/fd")
                .expect("/proc/self/fd")
                .count(),
        }
    }
}

/// Samples resident memory once a second until the load stops.
pub struct RssSampler {
    warmup: Duration,
    samples: Arc<Mutex<Vec<(Duration, u64)>>>,
    task: JoinHandle<()>,
}

impl RssSampler {
    /// Starts sampling; `stop` is the load's token.
    pub fn start(run: &Arc<Run>, stop: CancellationToken) -> RssSampler {
        let warmup = Duration::from_secs((run.secs / 10).clamp(3, 30));
        let samples = Arc::new(Mutex::new(Vec::<(Duration, u64)>::new()));
        let task = {
            let (samples, run) = (samples.clone(), run.clone());
            tokio::spawn(async move {
                loop {
                    samples.lock().unwrap().push((run.at(), rss_kib()));
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stop.cancelled() => break,
                    }
                }
            })
        };
        RssSampler {
            warmup,
            samples,
            task,
        }
    }

    /// Takes the last figure (call it once the load has stopped) and waits
    /// for the sampler to end.
    pub async fn finish(self, run: &Run) -> Memory {
        let end = rss_kib();
        // The soak's own growing record, to tell it apart from the pool's memory.
        let log = run.writes.lock().unwrap().capacity() * std::mem::size_of::<WriteRecord>() / 1024;
        let _ = self.task.await;
        let samples = self.samples.lock().unwrap().clone();
        let warm = samples
            .iter()
            .find(|(t, _)| *t >= self.warmup)
            .or(samples.last())
            .map(|&(_, k)| k)
            .unwrap_or(end);
        let peak = samples
            .iter()
            .map(|&(_, k)| k)
            .max()
            .unwrap_or(end)
            .max(end);
        let half = samples
            .iter()
            .find(|(t, _)| t.as_secs() >= run.secs / 2)
            .map_or(warm, |&(_, k)| k);
        Memory {
            warmup: self.warmup,
            samples,
            warm,
            end,
            peak,
            half,
            growth: end as i64 - warm as i64,
            log,
        }
    }
}

/// Resident memory over the run, in KiB.
pub struct Memory {
    /// How long the warm-up is.
    pub warmup: Duration,
    /// (time, RSS) once a second.
    pub samples: Vec<(Duration, u64)>,
    /// After the warm-up.
    pub warm: u64,
    /// When the load stopped.
    pub end: u64,
    /// The highest seen.
    pub peak: u64,
    /// Half-way through the load.
    pub half: u64,
    /// From the warm-up to the end.
    pub growth: i64,
    /// The soak's own write log.
    pub log: usize,
}

/// Puts the pool's view of each server into the timeline when it changes.
pub struct HealthWatch {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl HealthWatch {
    /// Starts watching `pool`; `urls` name the servers A, B and C.
    pub fn start(run: &Arc<Run>, pool: &Pool, urls: &[String; 3]) -> HealthWatch {
        let stop = CancellationToken::new();
        let (pool, run, token) = (pool.clone(), run.clone(), stop.clone());
        let names: Vec<(String, &str)> = urls.iter().cloned().zip(["A", "B", "C"]).collect();
        let task = tokio::spawn(async move {
            let mut last: HashMap<String, &str> = HashMap::new();
            while !token.is_cancelled() {
                for s in pool.status().servers {
                    let health = match s.health {
                        Health::Unknown => "not reached yet",
                        Health::Up => "up",
                        Health::Returning { .. } => "back up (hold-down)",
                        Health::Down { .. } => "down",
                        _ => "in a health this soak does not know",
                    };
                    let before = last.insert(s.addr.clone(), health);
                    // Neither the first sight of a server nor its first
                    // connect is news: only what happens to it after.
                    let news = match before {
                        None => !matches!(health, "up" | "not reached yet"),
                        Some(b) => b != health && !(b == "not reached yet" && health == "up"),
                    };
                    if news {
                        let name = names
                            .iter()
                            .find(|(u, _)| u.eq_ignore_ascii_case(&s.addr))
                            .map_or(s.addr.as_str(), |(_, n)| n);
                        run.event(format!("    pool: {name} {health}"));
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                    _ = token.cancelled() => break,
                }
            }
        });
        HealthWatch { stop, task }
    }

    /// Stops watching and waits for the task.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// What the run ended with, for the summary.
pub struct Ended<'a> {
    /// Seconds from the start until the load stopped.
    pub load_secs: f64,
    /// The writes as found on the servers.
    pub writes: &'a WriteFigures,
    /// What the fault schedule did.
    pub schedule: &'a Schedule,
    /// The pool's status before shutdown.
    pub status: &'a Status,
    /// Resident memory.
    pub memory: &'a Memory,
    /// How the shutdown went.
    pub shutdown: &'a Shutdown,
    /// Calls later than their timeout.
    pub late: &'a LateCalls,
}

/// The summary printed at the end.
pub struct Summary {
    /// The text, one figure a line.
    pub text: String,
    /// Successful calls of every kind.
    pub total_ok: u64,
}

/// Sums up the run: calls by operation and outcome, errors seen first and
/// last, writes, faults, pool counters, memory, shutdown and late calls.
pub fn summary(run: &Run, e: &Ended) -> Summary {
    let Ended {
        load_secs,
        writes,
        schedule,
        status,
        memory,
        shutdown,
        late,
    } = e;
    let stalls = run.stalls.lock().unwrap().clone();
    let outcomes = run.outcomes.lock().unwrap().clone();
    let slowest = run.slowest.lock().unwrap().clone();
    let total_ok: u64 = outcomes
        .iter()
        .filter(|((_, k), _)| k == "ok")
        .map(|(_, n)| n)
        .sum();
    let total_err: u64 = outcomes
        .iter()
        .filter(|((_, k), _)| k != "ok")
        .map(|(_, n)| n)
        .sum();

    let mut report = String::new();
    report += &format!("soak summary ({})\n", run.replay());
    report += &format!(
        "  load {load_secs:.1} s; {total_ok} calls ok, {total_err} failed ({:.0} ok/s)\n",
        total_ok as f64 / load_secs
    );
    let mut ops: Vec<&str> = outcomes.keys().map(|(o, _)| *o).collect();
    ops.dedup();
    for op in ops {
        let kinds: Vec<String> = outcomes
            .iter()
            .filter(|((o, _), _)| *o == op)
            .map(|((_, k), n)| format!("{k} {n}"))
            .collect();
        report += &format!(
            "  {op:<13} {} (slowest {:?})\n",
            kinds.join(", "),
            slowest.get(op).copied().unwrap_or_default()
        );
    }
    let error_times = run.error_times.lock().unwrap().clone();
    report += "  errors seen first / last (s):";
    for ((op, kind), (first, last)) in &error_times {
        report += &format!(
            " {op} {kind} {:.1}/{:.1};",
            first.as_secs_f64(),
            last.as_secs_f64()
        );
    }
    report += "\n";
    report += &format!(
        "  writes: {} ok, {} outcome unknown ({} of them applied), {} failed before send, {} hung\n",
        writes.ok, writes.unknown, writes.unknown_applied, writes.failed, writes.hung
    );
    report += &format!(
        "  faults: {:?}; cuts that hit a request: {}, write cuts that did: {}\n",
        schedule.done, schedule.cuts_claimed, schedule.write_cuts_claimed
    );
    let c = &status.counters;
    report += &format!(
        "  pool: {} generations, {} opens, {} open failures, {} lost, {} retries offered, marked down {:?}\n",
        c.generations,
        c.opens,
        c.open_failures,
        c.lost,
        c.retries_offered,
        status
            .servers
            .iter()
            .map(|s| s.counters.marked_down)
            .collect::<Vec<_>>()
    );
    report += &format!(
        "  RSS: {} KiB after {:?} warm-up, {} KiB at the end, peak {} KiB, growth {} KiB \
         ({} KiB in the second half); the soak's own write log: {} KiB\n",
        memory.warm,
        memory.warmup,
        memory.end,
        memory.peak,
        memory.growth,
        memory.end as i64 - memory.half as i64,
        memory.log
    );
    let step = (memory.samples.len() / 10).max(1);
    let trend: Vec<String> = memory
        .samples
        .iter()
        .step_by(step)
        .map(|(t, k)| format!("{:.0}s:{:.1}", t.as_secs_f64(), *k as f64 / 1024.0))
        .collect();
    report += &format!("  RSS trend (s:MiB): {}\n", trend.join(" "));
    report += &format!(
        "  shutdown: {} ms, {} sockets left\n",
        shutdown.ms, shutdown.left_open
    );
    report += &format!(
        "  calls later than timeout + {LATE_SLACK:?}: {}, of which {} while the \
         process was not scheduled; such stalls (> 200 ms): {}, longest {:?}\n",
        late.late,
        late.excused,
        stalls.len(),
        stalls.iter().map(|&(_, l)| l).max().unwrap_or_default()
    );
    Summary {
        text: report,
        total_ok,
    }
}
