//! Typed configuration: the last good value of a configuration node as a
//! Rust type, kept in memory and never replaced by a value that is not
//! JSON, does not fit the schema, does not deserialize or fails a check.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::release::Applied;
use crate::session::State;
use crate::subscription::Subscription;
use crate::{Error, Registry, Result};

type Check<T> = Arc<dyn Fn(&T) -> std::result::Result<(), String> + Send + Sync>;

/// Where a typed configuration stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigStatus {
    /// The value held is the node's value at `version`.
    Valid {
        /// The live node's version.
        version: i32,
    },
    /// The node's value at `version` was refused; the value held is the
    /// last good one (or the default).
    Rejected {
        /// The refused version.
        version: i32,
        /// Why, one line each: not JSON, each schema violation, the type's
        /// error, each check that failed.
        reasons: Vec<String>,
    },
    /// The node does not exist; the value held is the last good one (or
    /// the default).
    Missing,
    /// Not connected to ZooKeeper: the value held is the last good one
    /// known (from memory, or from the cache file on a cold start).
    Stale {
        /// The version of the value held, if it came from the node.
        version: Option<i32>,
    },
}

/// What the task publishes to the handles.
struct Current<T> {
    value: Arc<T>,
    /// The version `value` came from (`None`: the default).
    version: Option<i32>,
    /// The zxid of the write of that version (0: not from the node).
    mzxid: i64,
    status: ConfigStatus,
    /// Whether `value` is the live value, a canary's, or neither.
    applied: Applied,
    /// Bumped for each new good value.
    seq: u64,
}

mod follow;
use follow::{save, Follower, Outcome};

/// A typed configuration being set up (see [`Registry::config`]).
pub struct ConfigBuilder<T> {
    registry: Registry,
    path: String,
    default: Option<T>,
    checks: Vec<Check<T>>,
    saves: bool,
}

impl Registry {
    /// The configuration node `path` as a `T`: [`Config::get`] is the last
    /// good value, from memory. A value is good when it is JSON, fits the
    /// path's schema (if it has one), deserializes into `T` and passes
    /// every [`validate`](ConfigBuilder::validate) check. Anything else is
    /// refused: logged once, counted, shown in [`Config::status`], and the
    /// last good value is kept. With a
    /// [`cache_file`](crate::RegistryBuilder::cache_file), the last good
    /// value is saved there and serves a cold start with ZooKeeper down.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn demo(registry: ndsr::Registry) -> ndsr::Result<()> {
    /// #[derive(serde::Deserialize)]
    /// struct Web { pool: u32 }
    /// let web = registry
    ///     .config::<Web>("/config/web")
    ///     .validate(|w: &Web| if w.pool > 0 { Ok(()) } else { Err("pool must be positive") })
    ///     .build()
    ///     .await?;
    /// println!("pool {}", web.get().pool);
    /// # Ok(()) }
    /// ```
    pub fn config<T>(&self, path: &str) -> ConfigBuilder<T>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        ConfigBuilder {
            registry: self.clone(),
            path: path.to_string(),
            default: None,
            checks: Vec::new(),
            saves: true,
        }
    }
}

impl<T> ConfigBuilder<T>
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    /// The value to use while the node is missing, or holds nothing good
    /// yet.
    pub fn default_value(mut self, value: T) -> Self {
        self.default = Some(value);
        self
    }

    /// A check every value must pass to replace the last good one; its
    /// error is the reason given.
    pub fn validate<F, E>(mut self, check: F) -> Self
    where
        F: Fn(&T) -> std::result::Result<(), E> + Send + Sync + 'static,
        E: std::fmt::Display,
    {
        self.checks.push(Arc::new(move |t: &T| check(t).map_err(|e| e.to_string())));
        self
    }

    /// Whether each good value is saved to the registry's cache file
    /// (default yes). A caller that judges values further, after this
    /// handle (the Python module's `validate` and `model`), turns it off
    /// and saves what it accepts with [`Config::save_current`].
    pub fn saves_good_values(mut self, saves: bool) -> Self {
        self.saves = saves;
        self
    }

    /// Reads the node (within the connect timeout) and starts following
    /// it. Returns once there is a value: the node's if it is good, else
    /// the default, else the cache file's last good value.
    ///
    /// # Errors
    /// [`Error::ConfigUnavailable`] when there is none of the three, saying
    /// why (missing, refused and the reasons, or no connection);
    /// [`Error::InvalidPath`]; [`Error::Closed`].
    pub async fn build(self) -> Result<Config<T>> {
        let ConfigBuilder { registry, path, default, checks, saves } = self;
        let mut subscription = registry.subscribe(&path)?;
        let canary = registry.subscribe(&registry.layout(&path).canary)?;
        let mut follower = Follower::new(registry.clone(), path.clone(), checks, saves);
        // Cold start with ZooKeeper unreachable: the saved good value, at
        // once (as `get` serves the saved snapshot); the node replaces it
        // once connected.
        if registry.state() != State::Connected {
            if let Some((value, version, mzxid)) = follower.saved() {
                let status = ConfigStatus::Stale { version: Some(version) };
                let applied = Applied::Other;
                let (tx, rx) =
                    watch::channel(Current { value, version: Some(version), mzxid, status, applied, seq: 0 });
                let rejected = follower.rejected.clone();
                let refusals = follower.refusals();
                registry.shared.tasks.spawn(follower.run(subscription, canary, tx, false));
                return Ok(Config { rx, registry, path, rejected, refusals });
            }
        }
        // The first snapshot and its bytes, within the connect timeout (a
        // read that keeps failing, say on an ACL, is retried in the
        // background, not here).
        let first = tokio::time::timeout_at(registry.deadline(), async {
            match subscription.next().await {
                Some(snapshot) => Some(follower.read(snapshot.stat.map(|s| s.mzxid)).await),
                None => None,
            }
        })
        .await;
        let mut unread = false;
        let outcome = match first {
            Ok(Some(outcome)) => outcome,
            Ok(None) => return Err(Error::Closed),
            Err(_) => {
                // Whatever was half read is read again by the follower,
                // first thing.
                follower.forget();
                unread = true;
                Outcome::Unreachable
            }
        };
        let mut applied = Applied::Other;
        let (value, version, mzxid, status) = match outcome {
            Outcome::Good(value, version, mzxid, from) => {
                applied = from;
                (Arc::new(value), Some(version), mzxid, ConfigStatus::Valid { version })
            }
            other => {
                let status = match &other {
                    Outcome::Refused(version, reasons) => {
                        ConfigStatus::Rejected { version: *version, reasons: reasons.clone() }
                    }
                    Outcome::Missing => ConfigStatus::Missing,
                    _ => ConfigStatus::Stale { version: None },
                };
                if let Some(value) = default {
                    (Arc::new(value), None, 0, status)
                } else if let Some((value, version, mzxid)) = follower.saved() {
                    (value, Some(version), mzxid, ConfigStatus::Stale { version: Some(version) })
                } else {
                    let why = match other {
                        Outcome::Refused(version, reasons) => {
                            format!("version {version} was refused: {}", reasons.join("; "))
                        }
                        Outcome::Missing => "the node does not exist".to_string(),
                        _ => "no connection within the connect timeout, and no saved value".to_string(),
                    };
                    return Err(Error::ConfigUnavailable { path, reason: format!("{why}; and no default") });
                }
            }
        };
        let (tx, rx) = watch::channel(Current { value, version, mzxid, status, applied, seq: 0 });
        let rejected = follower.rejected.clone();
        let refusals = follower.refusals();
        registry.shared.tasks.spawn(follower.run(subscription, canary, tx, unread));
        Ok(Config { rx, registry, path, rejected, refusals })
    }
}

/// A typed configuration: the last good value of a node (see
/// [`Registry::config`]). Cheap to clone; the node is followed while any
/// clone lives.
pub struct Config<T> {
    rx: watch::Receiver<Current<T>>,
    registry: Registry,
    path: String,
    rejected: Arc<AtomicU64>,
    /// Values a caller refused (see [`Config::refuse_if`]), by generation.
    refusals: tokio::sync::mpsc::UnboundedSender<(u64, Vec<String>)>,
}

impl<T> Clone for Config<T> {
    fn clone(&self) -> Self {
        Config {
            rx: self.rx.clone(),
            registry: self.registry.clone(),
            path: self.path.clone(),
            rejected: self.rejected.clone(),
            refusals: self.refusals.clone(),
        }
    }
}

impl<T> std::fmt::Debug for Config<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config").field("path", &self.path).field("status", &self.status()).finish()
    }
}

impl<T> Config<T> {
    /// The last good value, from memory.
    pub fn get(&self) -> Arc<T> {
        self.rx.borrow().value.clone()
    }

    /// The version of the node the value held came from (`None`: the
    /// default). For a canary's value ([`applied`](Self::applied)), the
    /// live version the canary runs over.
    pub fn version(&self) -> Option<i32> {
        self.rx.borrow().version
    }

    /// Whether the value held is the live node's, a canary's (see
    /// [`Registry::start_canary`]: this client's identity and labels
    /// matched the canary's rule and the value passed every check), or
    /// neither (a default or a saved value).
    pub fn applied(&self) -> Applied {
        self.rx.borrow().applied.clone()
    }

    /// Where the configuration stands. [`ConfigStatus::Stale`] while the
    /// registry is not connected (unless the last value read was refused).
    pub fn status(&self) -> ConfigStatus {
        let current = self.rx.borrow();
        match &current.status {
            ConfigStatus::Rejected { .. } => current.status.clone(),
            _ if self.registry.state() != State::Connected => {
                ConfigStatus::Stale { version: current.version }
            }
            status => status.clone(),
        }
    }

    /// How many values were refused so far: each version read and refused
    /// counts once. Like a watch, it judges the latest value: a version
    /// replaced before it was read is never judged (see
    /// [`Registry::releases`] for every release).
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// The configuration path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Saves the value held now to the cache file as the last good one,
    /// if it came from the node (see
    /// [`ConfigBuilder::saves_good_values`]). Called outside a Tokio
    /// runtime, it writes the file on the calling thread.
    pub fn save_current(&self)
    where
        T: serde::Serialize,
    {
        let held = self.get();
        self.save_if(&held);
    }

    /// As [`save_current`](Self::save_current), only if the value held is
    /// still `judged` (the same `Arc`, from [`get`](Self::get)): what a
    /// caller that judged a value saves, never a newer one it has not
    /// judged. Returns whether it saved.
    pub fn save_if(&self, judged: &Arc<T>) -> bool
    where
        T: serde::Serialize,
    {
        let (version, mzxid) = {
            let current = self.rx.borrow();
            if !Arc::ptr_eq(&current.value, judged) {
                return false;
            }
            (current.version, current.mzxid)
        };
        match (version, serde_json::to_string(&**judged)) {
            (Some(version), Ok(text)) => {
                save(&self.registry.shared, &self.path, version, mzxid, text);
                true
            }
            _ => false,
        }
    }

    /// A caller that judges values further, after this handle (the Python
    /// module's `validate` and `model`), refuses the value held, if it is
    /// still `judged` (the same `Arc`, from [`get`](Self::get)). A canary
    /// refused so is never applied again by this handle: it goes back to
    /// the live value (a new good value), and its report says the canary
    /// was refused, with `reasons`. A live value refused so is reported as
    /// refused. Returns whether `judged` was still held.
    pub fn refuse_if(&self, judged: &Arc<T>, reasons: Vec<String>) -> bool {
        let seq = {
            let current = self.rx.borrow();
            if !Arc::ptr_eq(&current.value, judged) {
                return false;
            }
            current.seq
        };
        self.refusals.send((seq, reasons)).is_ok()
    }

    /// The good values from now on, one per new good value (a value
    /// refused is never seen here). Ends when the registry closes.
    pub fn changes(&self) -> ConfigChanges<T> {
        let mut rx = self.rx.clone();
        let seq = rx.borrow_and_update().seq;
        ConfigChanges { rx, seq }
    }
}

/// The good values of a [`Config`], as they come (see [`Config::changes`]).
pub struct ConfigChanges<T> {
    rx: watch::Receiver<Current<T>>,
    seq: u64,
}

impl<T> ConfigChanges<T> {
    /// The next good value; `None` once the registry is closed.
    ///
    /// # Cancellation safety
    /// Cancel-safe: a cancelled call loses no value (the latest is kept).
    pub async fn next(&mut self) -> Option<Arc<T>> {
        loop {
            {
                let current = self.rx.borrow_and_update();
                if current.seq != self.seq {
                    self.seq = current.seq;
                    return Some(current.value.clone());
                }
            }
            self.rx.changed().await.ok()?;
        }
    }
}
