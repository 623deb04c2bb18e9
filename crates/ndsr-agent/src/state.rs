//! The agent's shared state: the registry, the configuration in force, the
//! followed paths and services (each with a change index for blocking
//! queries), the registrations it holds, and the change signal the
//! dashboard and templates listen to.
//!
//! Paths and services followed only because a reader asked are let go
//! when unused: after `[http] path_idle` with no request or stream on
//! them, or (least recently used first) when the table is full and a new
//! one is asked for. Configured services, registrations' paths and paths
//! in use (a read waiting, a blocking query, an SSE stream) are kept.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use ndsr::discovery::{Format, Instances, Selector, SelectorSpec};
use ndsr::{Registry, Snapshot};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::error::AgentError;
use crate::registration::Registrations;
use crate::template_status::TemplateStatuses;

/// A value and the agent-wide change index at which it was last set.
#[derive(Clone, Debug)]
pub struct Versioned<T> {
    pub index: u64,
    pub value: T,
    /// The value's fresh answer body, made once by the first reader that
    /// needs it and shared by every clone (`None` inside: it could not be
    /// made). Many readers woken by one change answer with one body.
    pub rendered: Arc<OnceLock<Option<Bytes>>>,
}

impl<T> Versioned<T> {
    /// `value` at `index`, its body not made yet.
    pub fn new(index: u64, value: T) -> Versioned<T> {
        Versioned { index, value, rendered: Arc::default() }
    }
}

type Feed<T> = watch::Receiver<Option<Versioned<T>>>;

/// A followed service: its directory and format.
type ServiceKey = (String, Option<Format>);

/// A pick's selector's key: the service and the selector's spec.
type PickKey = (ServiceKey, SelectorSpec);

/// How a followed path is used: the requests and streams holding it now,
/// and when the last one let go.
#[derive(Debug)]
struct Use {
    holders: AtomicUsize,
    last: Mutex<Instant>,
}

impl Use {
    fn new() -> Arc<Use> {
        Arc::new(Use { holders: AtomicUsize::new(0), last: Mutex::new(Instant::now()) })
    }

    fn hold(self: &Arc<Self>) -> Lease {
        self.holders.fetch_add(1, Ordering::SeqCst);
        Lease(self.clone())
    }

    fn touch(&self) {
        *lock(&self.last) = Instant::now();
    }

    /// How long it has been unused, `None` while something holds it.
    fn unused_for(&self, now: Instant) -> Option<Duration> {
        (self.holders.load(Ordering::SeqCst) == 0).then(|| now.saturating_duration_since(*lock(&self.last)))
    }
}

/// A request's or stream's hold on a followed path: while it lives, the
/// path is in active use and is not let go.
#[derive(Debug)]
pub struct Lease(Arc<Use>);

impl Drop for Lease {
    fn drop(&mut self) {
        // The time first: whoever sees no holder sees when the last left.
        self.0.touch();
        self.0.holders.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A feed, held: its path stays followed while this lives.
pub struct Held<T> {
    feed: Feed<T>,
    _lease: Lease,
}

impl<T> Deref for Held<T> {
    type Target = watch::Receiver<Option<Versioned<T>>>;
    fn deref(&self) -> &Self::Target {
        &self.feed
    }
}

impl<T> DerefMut for Held<T> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.feed
    }
}

/// A followed path or service: its feed, the stop of the task that
/// follows it (removing the entry stops it, which drops its subscription
/// and so the library's watch), and its use.
struct Followed<T> {
    feed: Feed<T>,
    stop: CancellationToken,
    used: Arc<Use>,
}

impl<T> Followed<T> {
    fn hold(&self) -> Held<T> {
        Held { feed: self.feed.clone(), _lease: self.used.hold() }
    }
}

impl<T> Drop for Followed<T> {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A pick's selector and its use.
struct Picker {
    selector: Arc<Selector>,
    used: Arc<Use>,
}

/// A canary node as last read: the zxid of its last write, and the canary
/// (`None`: not a canary).
pub type KnownCanary = (i64, Option<Arc<ndsr::release::Canary>>);

/// A running `[[mirror]]` as the dashboard shows it.
pub struct MirrorView {
    /// Its name.
    pub name: String,
    /// SRC, as `servers:path`.
    pub source: String,
    /// DST, as `servers:path`.
    pub destination: String,
    /// How far behind DST is.
    pub status: watch::Receiver<crate::mirror::Status>,
}

/// The agent.
pub struct Agent {
    pub registry: Registry,
    config: RwLock<Arc<Config>>,
    /// Followed nodes, by path.
    nodes: Mutex<HashMap<String, Followed<Arc<Snapshot>>>>,
    /// Followed services, by path and format.
    services: Mutex<HashMap<ServiceKey, Followed<Instances>>>,
    /// Selectors of `/v1/pick`, by path, format and spec, so that round
    /// robin goes round across requests.
    selectors: Mutex<HashMap<PickKey, Picker>>,
    pub registrations: Registrations,
    /// Each template's last render (ok, or why its file was kept).
    pub templates: TemplateStatuses,
    /// The agent-wide change index: every change of any followed node or
    /// service gets the next number.
    index: AtomicU64,
    /// Bumped on every change the dashboard shows (nodes, services,
    /// registrations, the connection state).
    changes: watch::Sender<u64>,
    /// Ends streams and tasks at shutdown.
    pub cancel: CancellationToken,
    /// The canaries of configuration paths read through `/v1/config`, by
    /// canary node and the zxid of its last write (`None`: a node that is
    /// not a canary), so that a canary is read once per change.
    pub canaries: Mutex<HashMap<String, KnownCanary>>,
    /// The `[[mirror]]` entries running, for the dashboard.
    pub mirrors: Mutex<Vec<MirrorView>>,
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
            templates: TemplateStatuses::default(),
            index: AtomicU64::new(0),
            changes: watch::channel(0).0,
            cancel: CancellationToken::new(),
            canaries: Default::default(),
            mirrors: Default::default(),
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
        // Unused paths are let go after `path_idle`.
        let this = agent.clone();
        agent.tasks.spawn(async move {
            loop {
                let every = (this.config().http.path_idle / 4)
                    .clamp(Duration::from_millis(50), Duration::from_secs(30));
                tokio::select! {
                    () = this.cancel.cancelled() => return,
                    () = tokio::time::sleep(every) => this.sweep(),
                }
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

    /// Follows `path` (once), without waiting: its snapshot so far (`None`
    /// until the first one is read).
    pub fn node_now(self: &Arc<Self>, path: &str) -> Result<Option<Arc<Snapshot>>, AgentError> {
        let start = || {
            let subscription = self.registry.subscribe(path)?;
            Ok(futures::stream::unfold(subscription, |mut s| async move { s.next().await.map(|v| (v, s)) })
                .boxed())
        };
        let rx = self.follow(&self.nodes, path.to_string(), |p| self.registered(p), start)?;
        let now = rx.borrow().as_ref().map(|v| v.value.clone());
        Ok(now)
    }

    /// Follows `path` (once), and waits for its first snapshot.
    pub async fn node(self: &Arc<Self>, path: &str) -> Result<Held<Arc<Snapshot>>, AgentError> {
        let start = || {
            let subscription = self.registry.subscribe(path)?;
            Ok(futures::stream::unfold(subscription, |mut s| async move { s.next().await.map(|v| (v, s)) })
                .boxed())
        };
        let rx = self.follow(&self.nodes, path.to_string(), |p| self.registered(p), start)?;
        first(rx, path).await
    }

    /// Follows the service directory `path` (once per format), and waits
    /// for its first list.
    pub async fn service(
        self: &Arc<Self>,
        path: &str,
        format: Option<Format>,
    ) -> Result<Held<Instances>, AgentError> {
        let config = self.config();
        let start = || {
            let watch = self.registry.watch_instances(path, format)?;
            let changes =
                futures::stream::unfold(watch, |mut w| async move { w.next().await.map(|c| (c, w)) });
            Ok(changes.map(|change| change.instances).boxed())
        };
        let rx =
            self.follow(&self.services, (path.to_string(), format), |k| configured(&config, k), start)?;
        first(rx, path).await
    }

    /// The feed of `key` in `feeds`, held: made once, from the stream
    /// `start` gives, by a task that sets each value with the next change
    /// index. A full table lets its least recently used unused entry go
    /// (not one `keep` keeps) to make room; a key `keep` keeps is always
    /// followed.
    fn follow<K, T>(
        self: &Arc<Self>,
        feeds: &Mutex<HashMap<K, Followed<T>>>,
        key: K,
        keep: impl Fn(&K) -> bool,
        start: impl FnOnce() -> Result<BoxStream<'static, T>, AgentError>,
    ) -> Result<Held<T>, AgentError>
    where
        K: std::hash::Hash + Eq + Clone,
        T: Send + Sync + 'static,
    {
        let max = self.config().http.max_paths;
        let mut feeds = lock(feeds);
        if let Some(followed) = feeds.get(&key) {
            return Ok(followed.hold());
        }
        if !keep(&key) {
            make_room(&mut feeds, max, |f| &f.used, &keep)?;
        }
        let mut values = start()?;
        let (tx, rx) = watch::channel(None);
        let stop = self.cancel.child_token();
        let (this, stopped) = (self.clone(), stop.clone());
        self.tasks.spawn(async move {
            loop {
                let value = tokio::select! {
                    () = stopped.cancelled() => return,
                    next = values.next() => match next { Some(value) => value, None => return },
                };
                tx.send_replace(Some(Versioned::new(this.next_index(), value)));
                this.changed();
            }
        });
        let followed = Followed { feed: rx, stop, used: Use::new() };
        let held = followed.hold();
        feeds.insert(key, followed);
        Ok(held)
    }

    /// Is `path` one of the agent's registrations (kept followed)?
    fn registered(&self, path: &str) -> bool {
        self.registrations.status(path).is_some()
    }

    /// Lets go of every path, service and selector unused for `path_idle`
    /// (configured services and registrations' paths excepted).
    fn sweep(&self) {
        let config = self.config();
        let now = Instant::now();
        let expired = |used: &Use| used.unused_for(now).is_some_and(|d| d >= config.http.path_idle);
        lock(&self.nodes).retain(|path, f| self.registered(path) || !expired(&f.used));
        lock(&self.services).retain(|key, f| configured(&config, key) || !expired(&f.used));
        lock(&self.selectors).retain(|_, p| !expired(&p.used));
    }

    /// The latest list of a followed service, if it has one.
    pub fn service_now(&self, path: &str, format: Option<Format>) -> Option<Versioned<Instances>> {
        lock(&self.services).get(&(path.to_string(), format)).and_then(|f| f.feed.borrow().clone())
    }

    /// The selector of `spec` for the service at `path` in `format`, made
    /// once (and again after it was let go, unused).
    pub fn selector(
        &self,
        path: &str,
        format: Option<Format>,
        spec: &SelectorSpec,
    ) -> Result<Arc<Selector>, AgentError> {
        let max = self.config().http.max_paths;
        let key = ((path.to_string(), format), spec.clone());
        let mut selectors = lock(&self.selectors);
        if let Some(picker) = selectors.get(&key) {
            picker.used.touch();
            return Ok(picker.selector.clone());
        }
        make_room(&mut selectors, max, |p| &p.used, |_| false)?;
        let selector = Arc::new(spec.build());
        selectors.insert(key, Picker { selector: selector.clone(), used: Use::new() });
        Ok(selector)
    }

    /// How many paths and services the API follows.
    pub fn followed(&self) -> (usize, usize) {
        (lock(&self.nodes).len(), lock(&self.services).len())
    }
}

/// Is `key` a service of the configuration (kept followed)?
fn configured(config: &Config, (path, format): &ServiceKey) -> bool {
    config.services.iter().any(|s| &s.path == path && s.format() == *format)
}

/// Makes room for one more entry in a table of at most `max`: lets go of
/// the least recently used entry that nothing uses and `keep` does not
/// keep. 429 when every entry is in use or kept.
fn make_room<K, V>(
    entries: &mut HashMap<K, V>,
    max: usize,
    used: impl Fn(&V) -> &Use,
    keep: impl Fn(&K) -> bool,
) -> Result<(), AgentError>
where
    K: std::hash::Hash + Eq + Clone,
{
    while entries.len() >= max {
        let now = Instant::now();
        let oldest = entries
            .iter()
            .filter_map(|(k, v)| used(v).unused_for(now).map(|unused| (unused, k)))
            .filter(|(_, k)| !keep(k))
            .max_by_key(|(unused, _)| *unused)
            .map(|(_, k)| k.clone());
        let Some(oldest) = oldest else {
            return Err(AgentError::too_many(format!(
                "the agent follows {max} paths ([http] max_paths) and each is in use now (a blocking \
                 query, an SSE stream, a first read) or kept (a configured service, a registration); \
                 try again when one ends"
            )));
        };
        entries.remove(&oldest);
    }
    Ok(())
}

/// Waits (bounded) for a feed's first value.
async fn first<T>(mut rx: Held<T>, path: &str) -> Result<Held<T>, AgentError> {
    let read = tokio::time::timeout(FIRST_READ, rx.wait_for(Option::is_some)).await.map(|r| r.is_ok());
    match read {
        Ok(true) => Ok(rx),
        Ok(false) => Err(AgentError::unavailable("the agent is shutting down".into())),
        Err(_) => Err(AgentError::unavailable(format!(
            "no answer from ZooKeeper for {path} within {FIRST_READ:?}; the agent keeps trying"
        ))),
    }
}
