//! Live reload: [`Pool::watch`] re-reads the configuration files when they
//! change, and [`ConfigWatch::reload_now`] does it on demand (SIGHUP).
//!
//! The files are polled: every interval, each watched file (the TOML file,
//! the `ldap.conf` it names, the password file and the CA file) is hashed.
//! A change is applied once the files have stayed the same for one more
//! interval, so a file caught half-written is not loaded. An invalid new
//! configuration is refused with its error ([`WatchReport::last_error`]) and
//! the old one keeps serving; a later edit is tried again.
//!
//! Polling rather than inotify: it sees a file replaced by rename (how
//! editors and configuration managers write), a file on NFS, a symlink
//! switched by Kubernetes' ConfigMap update, and costs a few small reads
//! per interval.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::AbortHandle;

use crate::pool::WeakPool;
use crate::{BuildError, ConfigFile, ConfigFileError, Pool, PoolBuilder};

/// How [`Pool::watch_with`] watches.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// How often the files are checked (default 1 s). A change is applied
    /// after it has been stable for one interval, so within two.
    pub interval: Duration,
    /// The builder the files' settings are applied to on every reload: what
    /// the files do not say (jitter seed, runtime, multiplexing, …) comes
    /// from here. Default: [`PoolBuilder::new`].
    pub base: PoolBuilder,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            interval: Duration::from_secs(1),
            base: PoolBuilder::new(),
        }
    }
}

/// A new configuration file could not be applied; the old configuration
/// keeps serving. Both variants are the file author's to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The file cannot be read or is invalid (names the file, line and key).
    #[error(transparent)]
    File(#[from] ConfigFileError),
    /// The file parses but the pool refuses the settings (a bad URL, a TLS
    /// setting without a trusted certificate, …).
    #[error("{path}: {source}", path = .path.display())]
    Build {
        /// The file watched.
        path: PathBuf,
        /// Why the pool refused it.
        #[source]
        source: BuildError,
    },
    /// The pool was shut down or dropped: there is nothing to reload.
    #[error("the pool is shut down")]
    PoolGone,
}

/// What a [`ConfigWatch`] has done so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchReport {
    /// Changes applied (each started a new generation).
    pub reloads: u64,
    /// Changes refused (the old configuration kept serving).
    pub refused: u64,
    /// The error of the last refusal, cleared by the next successful reload.
    pub last_error: Option<String>,
    /// The files watched now.
    pub files: Vec<PathBuf>,
    /// Whether the watch is still running (it stops with the pool).
    pub running: bool,
}

/// A running watch, from [`Pool::watch`]. Dropping it stops the watch; it
/// also stops by itself when the pool shuts down or is dropped.
#[derive(Debug)]
pub struct ConfigWatch {
    task: AbortHandle,
    report: watch::Receiver<WatchReport>,
    now: mpsc::Sender<oneshot::Sender<Result<(), ReloadError>>>,
}

impl Drop for ConfigWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ConfigWatch {
    /// What the watch has done so far.
    pub fn report(&self) -> WatchReport {
        self.report.borrow().clone()
    }

    /// A receiver that sees every new [`WatchReport`], to wait on.
    pub fn subscribe(&self) -> watch::Receiver<WatchReport> {
        self.report.clone()
    }

    /// Re-reads the files now and reloads, whether or not they changed (what
    /// a daemon does on SIGHUP). An invalid file is refused with its error
    /// and the old configuration keeps serving.
    pub async fn reload_now(&self) -> Result<(), ReloadError> {
        let (tx, rx) = oneshot::channel();
        self.now.send(tx).await.map_err(|_| ReloadError::PoolGone)?;
        rx.await.map_err(|_| ReloadError::PoolGone)?
    }
}

impl Pool {
    /// Watches the configuration file at `path` (an ldapmux TOML file if its
    /// name ends in `.toml`, otherwise an OpenLDAP `ldap.conf`) and reloads
    /// the pool when it, or a file it names, changes. See [`WatchOptions`]
    /// for the interval and the builder the settings apply to.
    ///
    /// A reload changing only the servers keeps the connections to servers
    /// still listed ([`Pool::reload_keeping_servers`]); any other change
    /// starts a new generation and drains the old one (behaviour 11). The
    /// file is read once now: an invalid one is an error here.
    pub fn watch(&self, path: impl Into<PathBuf>) -> Result<ConfigWatch, ConfigFileError> {
        self.watch_with(path, WatchOptions::default())
    }

    /// [`Pool::watch`] with options.
    pub fn watch_with(
        &self,
        path: impl Into<PathBuf>,
        options: WatchOptions,
    ) -> Result<ConfigWatch, ConfigFileError> {
        let path = path.into();
        let config = read(&path)?;
        let files = watched_files(&path, &config);
        let applied = fingerprint(&files);
        let (report_tx, report) = watch::channel(WatchReport {
            files: files.clone(),
            running: true,
            ..WatchReport::default()
        });
        let (now, now_rx) = mpsc::channel(4);
        let watcher = Watcher {
            pool: self.weak_pool(),
            path,
            options,
            files,
            applied,
            pending: None,
            report: report_tx,
        };
        let task = self.runtime().spawn(watcher.run(now_rx)).abort_handle();
        Ok(ConfigWatch { task, report, now })
    }
}

/// The watch task's state.
struct Watcher {
    pool: WeakPool,
    path: PathBuf,
    options: WatchOptions,
    files: Vec<PathBuf>,
    /// The files' fingerprint when last applied (or refused).
    applied: u64,
    /// A new fingerprint seen once, applied if seen again.
    pending: Option<u64>,
    report: watch::Sender<WatchReport>,
}

impl Watcher {
    async fn run(mut self, mut now: mpsc::Receiver<oneshot::Sender<Result<(), ReloadError>>>) {
        let mut tick = tokio::time::interval(self.options.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if self.pool().is_none() {
                        break;
                    }
                    let files = self.files.clone();
                    let Ok(fp) = tokio::task::spawn_blocking(move || fingerprint(&files)).await
                    else {
                        break;
                    };
                    if fp == self.applied {
                        self.pending = None;
                    } else if self.pending != Some(fp) {
                        // Changed: wait one interval for the writer to finish.
                        self.pending = Some(fp);
                    } else {
                        let _ = self.reload().await;
                    }
                }
                asked = now.recv() => {
                    let Some(reply) = asked else { break };
                    let _ = reply.send(self.reload().await);
                }
            }
        }
        self.report.send_modify(|r| r.running = false);
    }

    /// The pool, unless it was dropped or shut down.
    fn pool(&self) -> Option<Pool> {
        let pool = self.pool.upgrade()?;
        (!pool.status().shut_down).then_some(pool)
    }

    /// Reads the files and reloads the pool; records the outcome.
    async fn reload(&mut self) -> Result<(), ReloadError> {
        let Some(pool) = self.pool() else {
            return Err(ReloadError::PoolGone);
        };
        let (path, old_files) = (self.path.clone(), self.files.clone());
        let read = tokio::task::spawn_blocking(move || {
            // The fingerprint is taken before the read: a change made while
            // reading shows as a new fingerprint at the next poll, never lost.
            let before = fingerprint(&old_files);
            let config = read(&path);
            let (files, applied) = match &config {
                Ok(c) => {
                    let files = watched_files(&path, c);
                    // A new file joined (or left) the set: fingerprint that set.
                    let applied = if files == old_files {
                        before
                    } else {
                        fingerprint(&files)
                    };
                    (files, applied)
                }
                Err(_) => (old_files, before),
            };
            (config, files, applied)
        })
        .await;
        let Ok((config, files, applied)) = read else {
            return Err(ReloadError::PoolGone);
        };
        let outcome = config.map_err(ReloadError::from).and_then(|config| {
            pool.reload_keeping_servers(config.apply(self.options.base.clone()))
                .map_err(|source| ReloadError::Build {
                    path: self.path.clone(),
                    source,
                })
        });
        self.files = files;
        self.applied = applied;
        self.pending = None;
        match &outcome {
            Ok(()) => {
                tracing::info!(path = %self.path.display(), "configuration file changed: reloaded");
                self.report.send_modify(|r| {
                    r.reloads += 1;
                    r.last_error = None;
                    r.files.clone_from(&self.files);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "new configuration refused: the old one keeps serving");
                self.report.send_modify(|r| {
                    r.refused += 1;
                    r.last_error = Some(e.to_string());
                });
            }
        }
        outcome
    }
}

/// Reads the configuration at `path`, by its file name.
fn read(path: &Path) -> Result<ConfigFile, ConfigFileError> {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
    {
        ConfigFile::read_toml(path)
    } else {
        ConfigFile::read_ldap_conf(path)
    }
}

/// Every file whose change may change the configuration: the files read,
/// the password file and the CA file.
fn watched_files(path: &Path, config: &ConfigFile) -> Vec<PathBuf> {
    let mut files = vec![path.to_owned()];
    for f in config
        .files()
        .iter()
        .chain(config.password_file())
        .chain(config.ca_file())
    {
        if !files.contains(f) {
            files.push(f.clone());
        }
    }
    files
}

/// A hash of the files' contents (a missing or unreadable file hashes as
/// such). Contents are hashed, never kept: one of them is a password.
fn fingerprint(files: &[PathBuf]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for f in files {
        match std::fs::read(f) {
            Ok(bytes) => {
                1u8.hash(&mut h);
                bytes.hash(&mut h);
            }
            Err(e) => {
                0u8.hash(&mut h);
                e.kind().hash(&mut h);
            }
        }
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory, removed when the test ends.
    fn dir(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("ldapmux-watch-{name}-"))
            .tempdir()
            .unwrap()
    }

    #[test]
    fn the_password_and_ca_files_are_watched_with_the_configuration() {
        let t = dir("files");
        let d = t.path();
        std::fs::write(d.join("ldap.conf"), "URI ldap://127.0.0.1:1\n").unwrap();
        std::fs::write(d.join("pw"), "secret\n").unwrap();
        std::fs::write(
            d.join("pool.toml"),
            "ldap_conf = \"ldap.conf\"\nbind_dn = \"cn=x\"\nbind_password_file = \"pw\"\n\
             tls_ca_file = \"ca.pem\"\n",
        )
        .unwrap();
        let path = d.join("pool.toml");
        let files = watched_files(&path, &read(&path).unwrap());
        let names: Vec<_> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, ["pool.toml", "ldap.conf", "pw", "ca.pem"]);
    }

    #[test]
    fn the_fingerprint_follows_content_and_presence() {
        let t = dir("fp");
        let d = t.path();
        let f = d.join("a");
        std::fs::write(&f, "one").unwrap();
        let files = vec![f.clone()];
        let one = fingerprint(&files);
        assert_eq!(fingerprint(&files), one, "stable while unchanged");
        std::fs::write(&f, "two").unwrap();
        let two = fingerprint(&files);
        assert_ne!(two, one, "content changes it");
        std::fs::remove_file(&f).unwrap();
        let gone = fingerprint(&files);
        assert_ne!(gone, two, "removal changes it");
        std::fs::write(&f, "").unwrap();
        assert_ne!(
            fingerprint(&files),
            gone,
            "an empty file is not a missing one"
        );
    }

    #[test]
    fn the_file_kind_follows_the_extension() {
        let t = dir("kind");
        let d = t.path();
        std::fs::write(d.join("x.TOML"), "uri = [\"ldap://127.0.0.1:1\"]\n").unwrap();
        std::fs::write(d.join("ldap.conf"), "URI ldap://127.0.0.1:2\n").unwrap();
        assert_eq!(
            read(&d.join("x.TOML")).unwrap().servers(),
            [("ldap://127.0.0.1:1", false)]
        );
        assert_eq!(
            read(&d.join("ldap.conf")).unwrap().servers(),
            [("ldap://127.0.0.1:2", false)]
        );
    }
}
