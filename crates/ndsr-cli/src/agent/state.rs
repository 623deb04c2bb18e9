//! The agent's shared state: the registry, the configuration in force, the
//! followed paths and services (each with a change index for blocking
//! queries), the registrations it holds, and the change signal the
//! dashboard and templates listen to.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime};

use futures::stream::{BoxStream, StreamExt};
use ndsr::discovery::{Format, Instances, Selector};
use ndsr::{Registry, Snapshot};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::api::ApiError;
use super::config::Config;
use super::registrations::Registrations;

/// A value and the agent-wide change index at which it was last set.
#[derive(Clone, Debug)]
pub struct Versioned<T> {
    pub index: u64,
    pub value: T,
}

type Feed<T> = watch::Receiver<Option<Versioned<T>>>;

/// A followed service: its directory and format.
type ServiceKey = (String, Option<Format>);

/// The agent.
pub struct Agent {
    pub registry: Registry,
    config: RwLock<Arc<Config>>,
    /// Followed nodes, by path.
    nodes: Mutex<HashMap<String, Feed<Arc<Snapshot>>>>,
    /// Followed services, by path and format.
    services: Mutex<HashMap<ServiceKey, Feed<Instances>>>,
    /// Selectors of `/v1/pick`, by path and query, so that round robin
    /// goes round across requests.
    selectors: Mutex<HashMap<String, Arc<Selector>>>,
    pub registrations: Registrations,
    /// The agent-wide change index: every change of any followed node or
    /// service gets the next number.
    index: AtomicU64,
    /// Bumped on every change the dashboard shows (nodes, services,
    /// registrations, the connection state).
    changes: watch::Sender<u64>,
    /// Ends streams and tasks at shutdown.
    pub cancel: CancellationToken,
    /// Every task the agent spawns; shutdown waits for them.
    pub tasks: TaskTracker,
    pub started: SystemTime,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long a first read may take before the API answers 503.
const FIRST_READ: Duration = Duration::from_secs(10);

impl Agent {
    pub fn new(registry: Registry, config: Config) -> Arc<Agent> {
        let agent = Arc::new(Agent {
            registry,
            config: RwLock::new(Arc::new(config)),
            nodes: Default::default(),
            services: Default::default(),
            selectors: Default::default(),
            registrations: Registrations::default(),
            index: AtomicU64::new(0),
            changes: watch::channel(0).0,
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
            started: SystemTime::now(),
        });
        // The connection state is part of what the dashboard shows.
        let (this, mut states) = (agent.clone(), agent.registry.state_changes());
        agent.tasks.spawn(async move {
            loop {
                tokio::select! {
                    () = this.cancel.cancelled() => return,
                    changed = states.changed() => if changed.is_err() { return },
                }
                this.changed();
            }
        });
        agent
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.config.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts a reloaded configuration in force.
    pub fn set_config(&self, config: Config) {
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        self.changed();
    }

    /// The next change index.
    fn next_index(&self) -> u64 {
        self.index.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Tells the dashboard and templates that something changed.
    pub fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    /// A receiver of the change signal.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// When the connection was lost, while it is: snapshots served
    /// meanwhile are the last known, marked stale.
    pub fn stale_since(&self, path: &str) -> Option<SystemTime> {
        match self.registry.get_cached(path) {
            Ok(Some(snapshot)) => match snapshot.freshness {
                ndsr::Freshness::Stale { since } => Some(since),
                ndsr::Freshness::Fresh => None,
            },
            _ => (self.registry.state() != ndsr::State::Connected).then(SystemTime::now),
        }
    }

    /// Follows `path` (once), and waits for its first snapshot.
    pub async fn node(self: &Arc<Self>, path: &str) -> Result<Feed<Arc<Snapshot>>, ApiError> {
        let rx = self.follow(&self.nodes, path.to_string(), || {
            let subscription = self.registry.subscribe(path)?;
            Ok(futures::stream::unfold(subscription, |mut s| async move { s.next().await.map(|v| (v, s)) })
                .boxed())
        })?;
        first(rx, path).await
    }

    /// Follows the service directory `path` (once per format), and waits
    /// for its first list.
    pub async fn service(
        self: &Arc<Self>,
        path: &str,
        format: Option<Format>,
    ) -> Result<Feed<Instances>, ApiError> {
        let rx = self.follow(&self.services, (path.to_string(), format), || {
            let watch = self.registry.watch_instances(path, format)?;
            let changes =
                futures::stream::unfold(watch, |mut w| async move { w.next().await.map(|c| (c, w)) });
            Ok(changes.map(|change| change.instances).boxed())
        })?;
        first(rx, path).await
    }

    /// The feed of `key` in `feeds`: made once, from the stream `start`
    /// gives, by a task that sets each value with the next change index.
    fn follow<K, T>(
        self: &Arc<Self>,
        feeds: &Mutex<HashMap<K, Feed<T>>>,
        key: K,
        start: impl FnOnce() -> Result<BoxStream<'static, T>, ApiError>,
    ) -> Result<Feed<T>, ApiError>
    where
        K: std::hash::Hash + Eq,
        T: Send + Sync + 'static,
    {
        let mut feeds = lock(feeds);
        if let Some(rx) = feeds.get(&key) {
            return Ok(rx.clone());
        }
        self.check_capacity(feeds.len())?;
        let mut values = start()?;
        let (tx, rx) = watch::channel(None);
        let this = self.clone();
        self.tasks.spawn(async move {
            loop {
                let value = tokio::select! {
                    () = this.cancel.cancelled() => return,
                    next = values.next() => match next { Some(value) => value, None => return },
                };
                tx.send_replace(Some(Versioned { index: this.next_index(), value }));
                this.changed();
            }
        });
        feeds.insert(key, rx.clone());
        Ok(rx)
    }

    /// The latest list of a followed service, if it has one.
    pub fn service_now(&self, path: &str, format: Option<Format>) -> Option<Versioned<Instances>> {
        lock(&self.services).get(&(path.to_string(), format)).and_then(|rx| rx.borrow().clone())
    }

    fn check_capacity(&self, followed: usize) -> Result<(), ApiError> {
        let max = self.config().http.max_paths;
        if followed >= max {
            return Err(ApiError::too_many(format!(
                "the agent already follows {max} paths ([http] max_paths); ask for one it follows"
            )));
        }
        Ok(())
    }

    /// The selector for `key` (a path and the pick's options), made by `make` once.
    pub fn selector(&self, key: String, make: impl FnOnce() -> Selector) -> Result<Arc<Selector>, ApiError> {
        let mut selectors = lock(&self.selectors);
        if let Some(selector) = selectors.get(&key) {
            return Ok(selector.clone());
        }
        self.check_capacity(selectors.len())?;
        let selector = Arc::new(make());
        selectors.insert(key, selector.clone());
        Ok(selector)
    }

    /// How many paths and services the API follows.
    pub fn followed(&self) -> (usize, usize) {
        (lock(&self.nodes).len(), lock(&self.services).len())
    }
}

/// Waits (bounded) for a feed's first value.
async fn first<T>(mut rx: Feed<T>, path: &str) -> Result<Feed<T>, ApiError> {
    let read = tokio::time::timeout(FIRST_READ, rx.wait_for(Option::is_some)).await.map(|r| r.is_ok());
    match read {
        Ok(true) => Ok(rx),
        Ok(false) => Err(ApiError::unavailable("the agent is shutting down".into())),
        Err(_) => Err(ApiError::unavailable(format!(
            "no answer from ZooKeeper for {path} within {FIRST_READ:?}; the agent keeps trying"
        ))),
    }
}
