//! One slapd process, run under a small `sh` wrapper that guarantees cleanup.
//!
//! The wrapper starts slapd in the background, prints its pid, then reads commands
//! from its stdin, a pipe whose only writer is this process:
//! `stop` / `cont` send SIGSTOP / SIGCONT to slapd and answer `ok`. When the pipe
//! closes, for whatever reason (we dropped it, the test panicked, the test binary was
//! SIGKILLed), the wrapper SIGKILLs slapd, reaps it with `wait`, and exits; we reap
//! the wrapper. Because slapd is the wrapper's child and the wrapper only reaps it at
//! the very end, its pid cannot be reused while we may still signal it.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use crate::HarnessError;

const WRAPPER: &str = r#"log=$1
shift
"$@" </dev/null >>"$log" 2>&1 &
pid=$!
trap '' PIPE HUP INT TERM
echo "pid $pid"
while IFS= read -r cmd; do
  case $cmd in
    stop) kill -STOP "$pid" 2>/dev/null; echo ok ;;
    cont) kill -CONT "$pid" 2>/dev/null; echo ok ;;
    *) echo unknown ;;
  esac
done
kill -KILL "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
if [ -n "${LDAPMUX_WRAPPER_REMOVE_DIR:-}" ]; then
  IFS=:; for d in $LDAPMUX_WRAPPER_REMOVE_DIR; do rm -rf -- "$d"; done
fi
exit 0
"#;

/// The environment variable that makes the wrapper remove directories (a
/// `:`-separated list) once its child is dead: for a server held in a
/// `static` (never dropped), whose temp dir would otherwise outlive the test
/// process.
pub(crate) const REMOVE_DIR_ENV: &str = "LDAPMUX_WRAPPER_REMOVE_DIR";

/// How long we wait for the wrapper to exit after closing its stdin.
const REAP_DEADLINE: Duration = Duration::from_secs(10);
/// How long freeze/thaw wait for the kernel to report the new state.
const SIGNAL_DEADLINE: Duration = Duration::from_secs(5);

struct Control {
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// A running (or exited but not yet reaped) slapd and its wrapper.
pub(crate) struct SlapdProcess {
    wrapper: Child,
    control: Mutex<Option<Control>>,
    pid: u32,
}

/// The state letter and parent pid of `pid` from `/proc/PID/stat`.
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself contain ") ".
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// State letters of every thread of `pid` (empty if the process is gone).
fn thread_states(pid: u32) -> Vec<char> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| {
            let stat = fs::read_to_string(e.path().join("stat")).ok()?;
            let rest = &stat[stat.rfind(')')? + 1..];
            rest.split_whitespace().next()?.chars().next()
        })
        .collect()
}

/// Runs a tool (`dscreate`, `samba-tool`, `kadmin.local`, `certutil` …) to
/// its end; returns what it printed (stdout, then stderr), or, if it failed,
/// `HarnessError::Start` naming the command and its status with that text.
pub(crate) fn run_tool(mut command: Command) -> Result<String, HarnessError> {
    let program = command.get_program().to_string_lossy().into_owned();
    let out = command
        .output()
        .map_err(|e| HarnessError::io(format!("run {program}"), e))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        return Ok(text);
    }
    let args: Vec<_> = command.get_args().map(|a| a.to_string_lossy()).collect();
    Err(HarnessError::Start {
        reason: format!("{program} {args:?} failed ({})", out.status),
        output: text,
    })
}

/// Whether a process with this pid exists and has a thread that is not a zombie
/// (any owner). The main thread of a SIGKILLed multi-threaded process turns into a
/// zombie before its other threads have exited and its sockets are closed, so the
/// main thread's state alone is not enough.
pub(crate) fn pid_alive(pid: u32) -> bool {
    thread_states(pid).iter().any(|s| *s != 'Z' && *s != 'X')
}

impl SlapdProcess {
    /// Starts `program args...` under the wrapper, its output appended to `log`.
    pub(crate) fn spawn(
        program: &Path,
        args: &[String],
        env: &[(String, String)],
        log: &Path,
    ) -> Result<SlapdProcess, HarnessError> {
        let mut wrapper = Command::new("/bin/sh")
            .arg("-c")
            .arg(WRAPPER)
            .arg("ldapmux-slapd-wrapper")
            .arg(log)
            .arg(program)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            // Its own process group: a Ctrl-C in the terminal (SIGINT to the
            // foreground group) stops the test or demo, which then shuts
            // slapd down itself, instead of killing slapd under it.
            .process_group(0)
            .spawn()
            .map_err(|e| HarnessError::io("spawn /bin/sh wrapper for slapd", e))?;
        let stdin = wrapper.stdin.take().expect("stdin is piped");
        let stdout = wrapper.stdout.take().expect("stdout is piped");
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        // The wrapper prints the pid right after forking, before anything can block.
        let read = stdout.read_line(&mut line);
        let pid = match read {
            Ok(_) => line
                .trim()
                .strip_prefix("pid ")
                .and_then(|p| p.parse::<u32>().ok()),
            Err(_) => None,
        };
        let Some(pid) = pid else {
            drop(stdin);
            let _ = wrapper.kill();
            let _ = wrapper.wait();
            return Err(HarnessError::Unexpected(format!(
                "slapd wrapper did not report a pid (read {read:?}, line {line:?})"
            )));
        };
        Ok(SlapdProcess {
            wrapper,
            control: Mutex::new(Some(Control { stdin, stdout })),
            pid,
        })
    }

    /// slapd's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether slapd is alive (running or stopped; not exited, not a zombie).
    ///
    /// Checks that the process with slapd's pid is still the wrapper's child, so a
    /// recycled pid is never mistaken for our slapd.
    pub(crate) fn alive(&self) -> bool {
        matches!(proc_stat(self.pid), Some((_, ppid)) if ppid == self.wrapper.id())
            && pid_alive(self.pid)
    }

    fn command(&self, cmd: &str) -> Result<(), HarnessError> {
        let mut guard = self.control.lock().unwrap_or_else(|p| p.into_inner());
        let control = guard
            .as_mut()
            .ok_or_else(|| HarnessError::Unexpected("slapd wrapper already closed".into()))?;
        writeln!(control.stdin, "{cmd}")
            .and_then(|_| control.stdin.flush())
            .map_err(|e| HarnessError::io(format!("send {cmd:?} to slapd wrapper"), e))?;
        let mut line = String::new();
        control
            .stdout
            .read_line(&mut line)
            .map_err(|e| HarnessError::io(format!("read answer to {cmd:?}"), e))?;
        if line.trim() != "ok" {
            return Err(HarnessError::Unexpected(format!(
                "slapd wrapper answered {line:?} to {cmd:?}"
            )));
        }
        Ok(())
    }

    fn wait_threads(&self, stopped: bool) -> Result<(), HarnessError> {
        let deadline = Instant::now() + SIGNAL_DEADLINE;
        loop {
            let states = thread_states(self.pid);
            if states.is_empty() {
                return Err(HarnessError::Unexpected(format!(
                    "slapd (pid {}) is gone",
                    self.pid
                )));
            }
            let all_stopped = states.iter().all(|s| *s == 'T' || *s == 't');
            let none_stopped = states.iter().all(|s| *s != 'T' && *s != 't');
            if (stopped && all_stopped) || (!stopped && none_stopped) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(HarnessError::Timeout(format!(
                    "slapd (pid {}) threads in states {states:?} after {SIGNAL_DEADLINE:?}, \
                     wanted {}",
                    self.pid,
                    if stopped {
                        "all stopped"
                    } else {
                        "none stopped"
                    }
                )));
            }
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// SIGSTOP; returns once every slapd thread is stopped.
    pub(crate) fn stop(&self) -> Result<(), HarnessError> {
        if !self.alive() {
            return Err(HarnessError::Unexpected(format!(
                "cannot freeze slapd (pid {}): it is not running",
                self.pid
            )));
        }
        self.command("stop")?;
        self.wait_threads(true)
    }

    /// SIGCONT; returns once no slapd thread is stopped. No-op if slapd is dead.
    pub(crate) fn cont(&self) -> Result<(), HarnessError> {
        if !self.alive() {
            return Ok(());
        }
        self.command("cont")?;
        self.wait_threads(false)
    }
}

impl Drop for SlapdProcess {
    /// Closes the wrapper's stdin (it SIGKILLs and reaps slapd), then reaps the
    /// wrapper. If the wrapper does not exit in time (never seen), SIGKILLs both.
    fn drop(&mut self) {
        let control = self
            .control
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        drop(control);
        let deadline = Instant::now() + REAP_DEADLINE;
        loop {
            match self.wrapper.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(1)),
                _ => break,
            }
        }
        // Fallback: kill slapd while it is still the wrapper's child, then the wrapper.
        if self.alive() {
            let _ = Command::new("/bin/sh")
                .args(["-c", "kill -KILL \"$1\"", "sh", &self.pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.wrapper.kill();
        let _ = self.wrapper.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_reads_own_process() {
        let (state, ppid) = proc_stat(std::process::id()).expect("own /proc entry");
        assert!(state == 'R' || state == 'S', "state {state}");
        assert!(ppid > 0);
        assert!(pid_alive(std::process::id()));
        assert!(!thread_states(std::process::id()).is_empty());
    }

    #[test]
    fn wrapper_kills_and_reaps_its_child_when_dropped() {
        let dir = std::env::temp_dir();
        let log = dir.join(format!(
            "ldapmux-harness-wrapper-{}.log",
            std::process::id()
        ));
        let p = SlapdProcess::spawn(Path::new("/bin/sleep"), &["30".into()], &[], &log).unwrap();
        let pid = p.pid();
        assert!(p.alive());
        p.stop().unwrap();
        assert!(thread_states(pid).iter().all(|s| *s == 'T'));
        p.cont().unwrap();
        drop(p);
        assert!(!pid_alive(pid), "child {pid} survived the wrapper");
        let _ = fs::remove_file(log);
    }
}
