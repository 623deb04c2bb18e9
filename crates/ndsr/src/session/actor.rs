//! The operations on one path in one epoch (run by the hub, one at a time):
//! reads, cache, writes, enforcement. The path's watch belongs to the
//! watch table (see `watch_table.rs`); an operation here never adds one.
//!
//! # Events
//!
//! A path's watch is a persistent *recursive* watch (ZooKeeper 3.6+
//! `addWatch`) on the path itself or on an ancestor that the watch table
//! shares between paths. It delivers `NodeCreated`/`NodeDeleted` for each
//! child with the child's name, so the children list is kept current
//! **without any read**: a service with 10,000 members costs one small
//! event per member change, not a re-list of 10,000 names (synapse#290). A
//! change of the node itself (created, deleted, data changed) costs one
//! pipelined read of its data and children. Events for deeper descendants
//! are ignored (they cost bytes, not reads).
//!
//! Persistent watches lose events while disconnected (ZOOKEEPER-4698), so
//! after every reconnect (once the watch table has added the watch again)
//! the path is re-read in full.

use std::collections::BTreeMap;
use std::sync::Arc;

use zookeeper_client::{Client, CreateMode, EventType, WatchedEvent};

use crate::path::direct_child;
use crate::session::desired::Counters;
use crate::session::parents::Parents;
use crate::session::reconcile::{self, On, Written};
use crate::session::{read_node, Goal, PastSessions, Shared};
use crate::snapshot::{Snapshot, Stat};
use crate::{Error, Result};

/// What is known of one path between operations: all a path costs while
/// nothing happens on it (the hub keeps one per path; see `hub/`). The
/// snapshot is the one in the cache (shared, not copied); of the node's
/// bytes only a digest is kept, to tell whether a registration's node still
/// holds its bytes.
#[derive(Default)]
pub(crate) struct PathState {
    /// The last snapshot published in this epoch (`None`: not read yet).
    latest: Option<Arc<Snapshot>>,
    /// [`digest`] of the node's bytes, when it exists.
    digest: u64,
}

/// A digest of a node's bytes (SipHash with fixed keys).
fn digest(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

impl PathState {
    /// Notes what an event asks for in `batch`.
    pub(crate) fn note(&self, path: &str, event: &WatchedEvent, batch: &mut Batch) {
        if event.event_type == EventType::Session {
            return; // the watch table's business
        }
        if event.path == path {
            // Our own create's event needs no read: we know what we wrote.
            // Anything else (a data change, a deletion, a creation we did
            // not make) is read back.
            let exists = self.latest.as_ref().is_some_and(|s| s.exists());
            batch.reread |= !(event.event_type == EventType::NodeCreated && exists);
            return;
        }
        if let Some(name) = direct_child(path, &event.path) {
            match event.event_type {
                EventType::NodeCreated => batch.children.insert(name.to_string(), true),
                EventType::NodeDeleted => batch.children.insert(name.to_string(), false),
                _ => None,
            };
        }
    }
}

/// What a batch of events asks for.
#[derive(Default)]
pub(crate) struct Batch {
    /// Reconnected (and the watch is back): re-read, paced by the rate limit.
    pub(crate) reconnected: bool,
    reread: bool,
    /// Children created (`true`) or deleted (`false`), the last event of
    /// each name winning.
    children: BTreeMap<String, bool>,
}

impl Batch {
    /// Does it ask for any work?
    pub(crate) fn is_empty(&self) -> bool {
        !(self.reconnected || self.reread) && self.children.is_empty()
    }
}

/// One operation on a path: its state, its registration's goal and
/// counts (lent by its record), with the session's handles for the time of
/// the operation.
pub(crate) struct Actor {
    shared: Arc<Shared>,
    path: Arc<str>,
    client: Client,
    past: Arc<PastSessions>,
    parents: Arc<Parents>,
    state: PathState,
    goal: Option<Goal>,
    counters: Box<Counters>,
    /// The record's: given up after this many dropped writes.
    given_up: Option<u32>,
    /// The registration was given up (by this operation) after this many
    /// dropped writes.
    gave_up: Option<u32>,
}

/// What an operation hands back to the path's record.
pub(crate) struct Outcome {
    pub(crate) state: PathState,
    pub(crate) counters: Box<Counters>,
    /// The goal the operation worked for, and the number of dropped writes
    /// after which it gave it up (if it did).
    pub(crate) gave_up: Option<(Goal, u32)>,
}

/// What an operation starts from: the session's handles and what the
/// path's record lends it.
pub(crate) struct Lent {
    pub(crate) shared: Arc<Shared>,
    pub(crate) client: Client,
    pub(crate) past: Arc<PastSessions>,
    pub(crate) parents: Arc<Parents>,
    pub(crate) state: PathState,
    pub(crate) goal: Option<Goal>,
    pub(crate) counters: Box<Counters>,
    pub(crate) given_up: Option<u32>,
}

impl Actor {
    pub(crate) fn new(path: Arc<str>, lent: Lent) -> Actor {
        let Lent { shared, client, past, parents, state, goal, counters, given_up } = lent;
        Actor { shared, path, client, past, parents, state, goal, counters, given_up, gave_up: None }
    }

    pub(crate) fn into_outcome(self) -> Outcome {
        let gave_up = self.gave_up.zip(self.goal).map(|(n, goal)| (goal, n));
        Outcome { state: self.state, counters: self.counters, gave_up }
    }

    fn known(&self) -> bool {
        self.state.latest.is_some()
    }

    fn stat(&self) -> Option<Stat> {
        self.state.latest.as_ref().and_then(|s| s.stat)
    }

    /// Brings the path up to date (its watch is already in place).
    ///
    /// A registration is first tried optimistically: the ephemeral create
    /// alone is all that registering a new node costs. If it fails (the
    /// node exists, ...), a full read and the owner-checked enforcement
    /// take over.
    pub(crate) async fn start(&mut self) {
        self.shared.throttle().await;
        if let Some(Goal::Ephemeral(bytes)) = self.goal.clone() {
            // Registrations racing into a parent this registry has not
            // seen yet wait for one shared mkdir, instead of each sending a
            // create that fails for want of the parent.
            if let Some(parent) = crate::path::parent(&self.path).filter(|p| *p != "/") {
                if !self.parents.known(parent) {
                    let _ = self.parents.ensure(&self.shared, &self.client, parent).await;
                }
            }
            let options = self.shared.create_options(CreateMode::Ephemeral);
            let floor = self.shared.zxid_floor();
            let creating = self.client.create(&self.path, &bytes, &options);
            let drops = Some(&self.counters.drops);
            let created =
                match self.shared.write_call("create", &self.path, &self.client, creating, drops).await {
                    // The parent went away since: make it again, then create.
                    Err(e) if e.is_no_node() => {
                        let ephemeral = CreateMode::Ephemeral;
                        reconcile::create_under_new_parent(
                            &self.shared,
                            &self.client,
                            &self.parents,
                            &self.path,
                            &bytes,
                            ephemeral,
                            drops,
                        )
                        .await
                    }
                    other => other.map(|(stat, _)| stat),
                };
            match created {
                Ok(stat) => self.remember(Some(Written { bytes, stat, floor })),
                Err(_) => self.resync().await,
            }
            return;
        }
        self.resync().await;
    }

    pub(crate) async fn apply(&mut self, batch: Batch) {
        if batch.reconnected {
            // Re-reading every path after a reconnect is the background
            // work that floods a server: the rate limit paces it.
            self.shared.throttle().await;
        }
        if batch.reconnected || batch.reread || !self.known() {
            self.resync().await;
        } else if !batch.children.is_empty() {
            self.merge_children(batch.children);
        }
    }

    /// Applies child creations and deletions to the latest snapshot and
    /// publishes it if that changed it.
    fn merge_children(&mut self, changes: BTreeMap<String, bool>) {
        let Some(latest) = self.state.latest.clone().filter(|s| s.exists()) else { return };
        let mut children = Vec::with_capacity(latest.children.len() + changes.len());
        let mut changed = false;
        for name in &latest.children {
            match changes.get(name) {
                Some(false) => changed = true,
                _ => children.push(name.clone()),
            }
        }
        for (name, _) in changes.into_iter().filter(|(_, created)| *created) {
            if latest.children.binary_search(&name).is_err() {
                children.push(name);
                changed = true;
            }
        }
        if changed {
            children.sort_unstable();
            let mut snapshot = Snapshot::clone(&latest);
            snapshot.children = children;
            self.publish(snapshot);
        }
    }

    /// Reads the node in full, publishes it, and enforces a registration.
    async fn resync(&mut self) {
        match read_node(&self.shared, &self.client, &self.path).await {
            Ok(read) => {
                let node = read.node.as_ref().map(|(bytes, stat)| (bytes.as_slice(), *stat));
                self.state.digest = node.map_or(0, |(bytes, _)| digest(bytes));
                self.publish(Snapshot::of_node(&self.path, node, read.children));
            }
            // Kept as it was; the next SyncConnected brings another resync.
            Err(e) => tracing::warn!(path = %self.path, error = %e, "cannot read watched path"),
        }
        if self.goal.is_some() {
            if let Err(e) = self.enforce(false).await {
                tracing::warn!(path = %self.path, error = %e, "cannot restore registration");
            }
        }
    }

    fn publish(&mut self, snapshot: Snapshot) {
        if let Some(stat) = &snapshot.stat {
            self.shared.saw_zxid(stat.czxid.max(stat.mzxid).max(stat.pzxid));
        }
        self.state.latest = Some(self.shared.cache.publish(&self.path, snapshot));
    }

    fn remember(&mut self, written: Option<Written>) {
        if let Some(w) = written {
            let children = match &self.state.latest {
                Some(latest) if latest.exists() => latest.children.clone(),
                _ => Vec::new(),
            };
            self.state.digest = digest(&w.bytes);
            // Our write is ZooKeeper's present: older than a zxid seen
            // before, the server's history went back.
            self.shared.wrote_at(&self.path, w.floor, w.stat.mzxid);
            self.publish(Snapshot::of_node(&self.path, Some((&w.bytes, Stat::from(&w.stat))), children));
        }
    }

    /// Does the node hold its registration's goal, as far as the watch
    /// tells? Then there is nothing to ask ZooKeeper. (A change the watch
    /// has not delivered yet triggers enforcement again when it arrives.)
    pub(crate) fn goal_holds(&self) -> bool {
        let Some(stat) = self.stat() else { return false };
        if stat.ephemeral_owner != self.client.session_id().0 {
            return false;
        }
        matches!(&self.goal, Some(Goal::Ephemeral(bytes)) if digest(bytes) == self.state.digest)
    }

    /// Brings the node to its registration's goal. `requested`: a caller
    /// asked for it just now (not an event or a reconnect).
    pub(crate) async fn enforce(&mut self, requested: bool) -> Result<()> {
        let Some(goal) = self.goal.clone() else {
            // Given up in the background before the caller's turn came:
            // the caller hears why, not a success.
            return match self.given_up {
                Some(attempts) if requested => {
                    Err(Error::WriteDropped { path: self.path.to_string(), attempts })
                }
                _ => Ok(()),
            };
        };
        if self.goal_holds() {
            return Ok(());
        }
        if let Goal::Ephemeral(_) = goal {
            self.back_off_dropped_writes().await?;
        }
        let on = On { shared: &self.shared, client: &self.client, past: &self.past, parents: &self.parents };
        let written = reconcile::enforce(on, &self.path, &goal, requested, &mut self.counters).await?;
        self.remember(written);
        Ok(())
    }

    /// A registration whose writes keep losing the connection (a request
    /// the server will not read) waits longer before each new attempt, and
    /// is given up after `RegistryBuilder::max_write_drops` in a row, instead of
    /// reconnecting in a tight loop.
    async fn back_off_dropped_writes(&mut self) -> Result<()> {
        let drops = self.counters.drops();
        if drops == 0 {
            return Ok(());
        }
        if drops >= self.shared.config.max_write_drops {
            // The record drops the goal (if it is still this one) when the
            // operation ends.
            self.gave_up = Some(drops);
            let error = Error::WriteDropped { path: self.path.to_string(), attempts: drops };
            tracing::error!(path = %self.path, error = %error, "registration given up");
            return Err(error);
        }
        let delay = std::time::Duration::from_millis(250) * 2u32.pow(drops.min(6));
        tracing::warn!(
            path = %self.path,
            attempts = drops,
            retry_in = ?delay,
            "the server dropped the connection while this registration was being written; backing off"
        );
        tokio::time::sleep(delay).await;
        Ok(())
    }

    pub(crate) async fn set_data(&mut self, bytes: Vec<u8>, keep_defaults: bool) -> Result<()> {
        let on = On { shared: &self.shared, client: &self.client, past: &self.past, parents: &self.parents };
        let written = reconcile::set_data(on, &self.path, &bytes, keep_defaults).await?;
        self.remember(written);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// A path at rest costs its `PathState` (its snapshot is the cache's):
    /// keep it small, it exists once per watched path.
    #[test]
    fn a_path_at_rest_is_small() {
        let size = std::mem::size_of::<super::PathState>();
        assert!(size <= 16, "a PathState is {size} bytes");
    }

    #[test]
    fn digests_tell_bytes_apart_and_are_stable() {
        assert_eq!(super::digest(b"abc"), super::digest(b"abc"));
        assert_ne!(super::digest(b"abc"), super::digest(b"abd"));
        assert_ne!(super::digest(b""), super::digest(b"\0"));
    }
}
