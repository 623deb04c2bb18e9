//! `[config] record_external`: configuration values written outside ndsr
//! (the original, zkCli, kazoo) recorded as `external` releases (issue
//! 24), so that the history shows them and a rollback can return to them.
//!
//! One task per entry follows its node through the library (a prefix:
//! the node's direct children, one follower each). When a live version
//! appears, and the agent has a session and is not read-only, it asks the
//! library to record it ([`Registry::record_external`](ndsr::Registry::record_external),
//! which does nothing when a release already records that version). A
//! failure is logged and counted, and tried again after a backoff, on the
//! next change or on reconnection; it never stops the agent.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use metrics::counter;
use tokio::sync::Mutex;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::Recorded;
use crate::state::Agent;

/// The first wait before a failed recording is tried again.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between tries.
const MAX_RETRY: Duration = Duration::from_secs(60);

/// A running follower: its stop and its task (one of the agent's tasks).
struct Follower {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// The followers of `record_external`, by entry.
#[derive(Default)]
pub struct Recorders {
    held: Mutex<HashMap<Recorded, Follower>>,
    /// Taken around each recording: two followers of one node (a path and
    /// a prefix over it) never record its version twice, each reading the
    /// history after the other wrote.
    serial: Serial,
}

/// One recording at a time in this agent.
type Serial = Arc<Mutex<()>>;

impl Recorders {
    /// Makes the followers exactly the configuration's: the ones that
    /// stayed run on, gone ones are stopped and awaited, new ones started.
    /// A read-only agent follows nothing (it cannot write a release).
    pub async fn reconcile(&self, agent: &Arc<Agent>) {
        let config = agent.config();
        let mut wanted = config.recorded();
        if config.http.readonly && !wanted.is_empty() {
            tracing::warn!("[config] record_external is ignored: the agent is read-only");
            wanted.clear();
        }
        let mut held = self.held.lock().await;
        let gone: Vec<Recorded> = held.keys().filter(|k| !wanted.contains(k)).cloned().collect();
        for key in gone {
            if let Some(follower) = held.remove(&key) {
                follower.stop.cancel();
                let _ = follower.task.await;
            }
        }
        for key in wanted {
            if held.contains_key(&key) {
                continue;
            }
            let stop = agent.cancel.child_token();
            let task = match &key {
                Recorded::Node(path) => agent.tasks.spawn(follow_node(
                    agent.clone(),
                    self.serial.clone(),
                    path.clone(),
                    stop.clone(),
                )),
                Recorded::Children(path) => agent.tasks.spawn(follow_children(
                    agent.clone(),
                    self.serial.clone(),
                    path.clone(),
                    stop.clone(),
                )),
            };
            held.insert(key, Follower { stop, task });
        }
    }
}

/// Follows the direct children of `parent`, one [`follow_node`] each,
/// until `stop`; waits for them before returning.
async fn follow_children(agent: Arc<Agent>, serial: Serial, parent: String, stop: CancellationToken) {
    let mut subscription = match agent.registry.subscribe(&parent) {
        Ok(subscription) => subscription,
        Err(e) => {
            tracing::warn!(path = %parent, "record_external: cannot follow the prefix: {e}");
            return;
        }
    };
    let mut children: BTreeMap<String, CancellationToken> = BTreeMap::new();
    let mut followers = JoinSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            Some(_) = followers.join_next(), if !followers.is_empty() => {}
            next = subscription.next() => {
                let Some(snapshot) = next else { break };
                children.retain(|name, child| {
                    let keep = snapshot.children.contains(name);
                    if !keep {
                        child.cancel();
                    }
                    keep
                });
                for name in &snapshot.children {
                    if children.contains_key(name) {
                        continue;
                    }
                    let child = stop.child_token();
                    let path = format!("{parent}/{name}");
                    followers.spawn(follow_node(agent.clone(), serial.clone(), path, child.clone()));
                    children.insert(name.clone(), child);
                }
            }
        }
    }
    stop.cancel();
    while followers.join_next().await.is_some() {}
}

/// A node's version: its life (`czxid`) and data version.
type Version = (i64, i32);

/// Follows `path` until `stop`, recording each live version no release
/// records.
async fn follow_node(agent: Arc<Agent>, serial: Serial, path: String, stop: CancellationToken) {
    let mut subscription = match agent.registry.subscribe(&path) {
        Ok(subscription) => subscription,
        Err(e) => {
            tracing::warn!(path = %path, "record_external: cannot follow: {e}");
            return;
        }
    };
    let mut states = agent.registry.state_changes();
    // The live version, and the last one known recorded.
    let mut live: Option<Version> = None;
    let mut done: Option<Version> = None;
    let mut retry: Option<Instant> = None;
    let mut backoff = FIRST_RETRY;
    loop {
        let due = live.is_some()
            && live != done
            && retry.is_none()
            && agent.registry.state() == ndsr::State::Connected;
        if due {
            let recorded = tokio::select! {
                () = stop.cancelled() => return,
                recorded = async {
                    let _one = serial.lock().await;
                    agent.registry.record_external(&path).await
                } => recorded,
            };
            match recorded {
                Ok(release) => {
                    if let Some(release) = release {
                        tracing::info!(path = %path, version = release.version, entry = %release.entry,
                            "recorded a value written outside ndsr as an external release");
                        counter!("ndsr_config_external_recorded_total", "path" => path.clone()).increment(1);
                        agent.changed();
                    }
                    done = live;
                    backoff = FIRST_RETRY;
                }
                Err(e) => {
                    tracing::warn!(path = %path, "record_external failed (tried again in {backoff:?}): {e}");
                    counter!("ndsr_config_external_errors_total", "path" => path.clone()).increment(1);
                    retry = Some(Instant::now() + backoff);
                    backoff = (backoff * 2).min(MAX_RETRY);
                }
            }
            continue;
        }
        let retry_at = retry.unwrap_or_else(Instant::now);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep_until(retry_at), if retry.is_some() => retry = None,
            changed = states.changed() => {
                if changed.is_err() {
                    return;
                }
                // A new session: what failed for want of one is tried now.
                if agent.registry.state() == ndsr::State::Connected {
                    retry = None;
                }
            }
            next = subscription.next() => {
                let Some(snapshot) = next else { return };
                let now = snapshot.stat.as_ref().map(|s| (s.czxid, s.version));
                if now != live {
                    retry = None;
                }
                live = now;
            }
        }
    }
}
