//! The operations on one path in one epoch (run by the hub, one at a time):
//! watch, cache, writes, enforcement.
//!
//! # Watch design
//!
//! One persistent *recursive* watch per path (ZooKeeper 3.6+ `addWatch`).
//! It delivers `NodeCreated`/`NodeDeleted` for each child with the child's
//! name, so the children list is kept current **without any read**: a
//! service with 10,000 members costs one small event per member change, not
//! a re-list of 10,000 names (synapse#290). A change of the node itself
//! (created, deleted, data changed) costs one pipelined read of its data and
//! children. Events for deeper descendants are ignored (they cost bytes,
//! not reads). Every path in a session uses this one mode: a one-shot and a
//! persistent watch on one path interfere on 3.8 servers (pitfall 13).
//!
//! Persistent watches lose events while disconnected (ZOOKEEPER-4698), so
//! on every `SyncConnected` the path is re-read in full.
//!
//! It also adds the watch again first: zookeeper-client 0.11.2 does not
//! re-send persistent watches when it reconnects (in
//! `WatchManager::resend_watches`, `index = index.max(index)` should be
//! `index.max(i)`, so only the three one-shot kinds are sent, with the old
//! `SetWatches` op). Without this, a watch would go silent after the first
//! reconnect, on the same server or another. `addWatch` of the same mode is
//! idempotent on the server, so this is harmless once the bug is fixed.
//!
//! With a rate limit configured, adding (and re-adding) a watch waits for a
//! token; reads and writes made for events and callers do not.

use std::collections::BTreeSet;
use std::sync::Arc;

use zookeeper_client::{AddWatchMode, Client, CreateMode, EventType, SessionState, WatchedEvent};

use crate::path::direct_child;
use crate::session::reconcile::{self, Written};
use crate::session::{read_node, Goal, Shared};
use crate::snapshot::{Snapshot, Stat};
use crate::{Error, Result};

/// What is known of one path between operations: all a path costs while
/// nothing happens on it (the hub keeps one per path; see `hub.rs`).
pub(crate) struct PathState {
    /// Shared with the hub's table.
    pub(crate) path: Arc<str>,
    /// The node's data and stat as last read or written (`None`: missing).
    node: Option<(Vec<u8>, Stat)>,
    children: BTreeSet<String>,
    /// Whether a full read has succeeded in this epoch.
    known: bool,
}

impl PathState {
    pub(crate) fn new(path: Arc<str>) -> PathState {
        PathState { path, node: None, children: BTreeSet::new(), known: false }
    }

    /// Notes what an event asks for in `batch` (a child's creation or
    /// deletion is applied to the children at once).
    pub(crate) fn note(&mut self, event: &WatchedEvent, batch: &mut Batch) {
        if event.event_type == EventType::Session {
            match event.session_state {
                SessionState::SyncConnected | SessionState::ConnectedReadOnly => {
                    batch.rewatch = true;
                    batch.reread = true;
                }
                state if state.is_terminated() => batch.terminated = true,
                _ => {}
            }
            return;
        }
        if event.path == *self.path {
            // Our own create's event needs no read: we know what we wrote.
            // Anything else (a data change, a deletion, a creation we did
            // not make) is read back.
            let ours = event.event_type == EventType::NodeCreated && self.known && self.node.is_some();
            batch.reread |= !ours;
            return;
        }
        if let Some(name) = direct_child(&self.path, &event.path) {
            match event.event_type {
                EventType::NodeCreated => batch.children_changed |= self.children.insert(name.to_string()),
                EventType::NodeDeleted => batch.children_changed |= self.children.remove(name),
                _ => {}
            }
        }
    }
}

/// One operation on a path: its state, with the session's handles for the
/// time of the operation.
pub(crate) struct Actor {
    shared: Arc<Shared>,
    path: Arc<str>,
    client: Client,
    node: Option<(Vec<u8>, Stat)>,
    children: BTreeSet<String>,
    known: bool,
}

/// What a batch of events asks for.
#[derive(Default)]
pub(crate) struct Batch {
    /// Reconnected: add the watch again (see the module docs).
    pub(crate) rewatch: bool,
    reread: bool,
    children_changed: bool,
    pub(crate) terminated: bool,
}

impl Batch {
    /// Does it ask for any work?
    pub(crate) fn is_empty(&self) -> bool {
        !(self.rewatch || self.reread || self.children_changed || self.terminated)
    }
}

impl Actor {
    pub(crate) fn new(shared: Arc<Shared>, client: Client, state: PathState) -> Actor {
        let PathState { path, node, children, known } = state;
        Actor { shared, path, client, node, children, known }
    }

    pub(crate) fn into_state(self) -> PathState {
        let Actor { path, node, children, known, .. } = self;
        PathState { path, node, children, known }
    }

    /// Adds the watch and brings the path up to date.
    ///
    /// A registration is first tried optimistically: the watch and the
    /// ephemeral create are sent together (one round trip, two requests),
    /// which is all that registering a new node costs. If the create fails
    /// (the node exists, a parent is missing, ...), a full read and the
    /// owner-checked enforcement take over.
    pub(crate) async fn start(&mut self) -> Option<zookeeper_client::PersistentWatcher> {
        if let Some(Goal::Ephemeral(bytes)) = self.goal() {
            self.shared.throttle().await;
            // Registrations racing into a parent this registry has not
            // seen yet wait for one shared mkdir, instead of each sending a
            // create that fails for want of the parent.
            if let Some(parent) = crate::path::parent(&self.path).filter(|p| *p != "/") {
                if !self.shared.parent_known(parent) {
                    let _ = self.shared.ensure_parent(&self.client, parent).await;
                }
            }
            let options = self.shared.create_options(CreateMode::Ephemeral);
            // Requests are sent as their futures are created, in this order.
            let watching = self.client.watch(&self.path, AddWatchMode::PersistentRecursive);
            let creating = self.client.create(&self.path, &bytes, &options);
            let (watched, created) = tokio::join!(
                self.shared.call("watch", &self.path, watching),
                self.shared.write_call("create", &self.path, &self.client, creating),
            );
            if let Ok(watcher) = watched {
                let created = match created {
                    // The parent went away since: make it again, then create.
                    Err(e) if e.is_no_node() => {
                        let ephemeral = CreateMode::Ephemeral;
                        reconcile::create_under_new_parent(
                            &self.shared,
                            &self.client,
                            &self.path,
                            &bytes,
                            ephemeral,
                        )
                        .await
                    }
                    other => other.map(|(stat, _)| stat),
                };
                match created {
                    Ok(stat) => {
                        self.remember(Some(Written { bytes, stat }));
                        self.known = true;
                    }
                    Err(_) => self.resync().await,
                }
                return Some(watcher);
            }
        }
        // A watch: the watch and the first read are sent together (one
        // round trip, three requests). ZooKeeper handles a connection's
        // requests in order, so the read sees the node as of the watch:
        // any later change is delivered by it.
        self.shared.throttle().await;
        let watching = self.client.watch(&self.path, AddWatchMode::PersistentRecursive);
        let reading = read_node(&self.shared, &self.client, &self.path);
        let (watched, read) = tokio::join!(self.shared.call("watch", &self.path, watching), reading);
        let watcher = match watched {
            Ok(watcher) => watcher,
            Err(_) => Box::pin(self.add_watch()).await?,
        };
        match read {
            Ok(read) => {
                self.take(read);
                self.known = true;
                self.publish();
                if self.goal().is_some() {
                    if let Err(e) = self.enforce(false).await {
                        tracing::warn!(path = %self.path, error = %e, "cannot restore registration");
                    }
                }
            }
            Err(_) => self.resync().await,
        }
        Some(watcher)
    }

    /// Adds the persistent recursive watch, retrying while the session lives.
    pub(crate) async fn add_watch(&self) -> Option<zookeeper_client::PersistentWatcher> {
        let mut delay = std::time::Duration::from_millis(50);
        loop {
            // Starting and re-arming watches is the background work that
            // floods a server after a reconnect: it is what the rate limit
            // paces. Event handling below never waits for it.
            self.shared.throttle().await;
            let added = self
                .shared
                .call("watch", &self.path, self.client.watch(&self.path, AddWatchMode::PersistentRecursive))
                .await;
            match added {
                Ok(watcher) => return Some(watcher),
                Err(e) => {
                    if self.client.state().is_terminated() {
                        return None;
                    }
                    tracing::warn!(path = %self.path, error = %e, "cannot add watch; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(2));
                }
            }
        }
    }

    pub(crate) async fn apply(&mut self, batch: Batch) {
        if batch.reread || !self.known {
            self.resync().await;
        } else if batch.children_changed {
            self.publish();
        }
    }

    /// Reads the node in full, publishes it, and enforces a registration.
    async fn resync(&mut self) {
        match self.read().await {
            Ok(()) => {
                self.known = true;
                self.publish();
            }
            // Kept as it was; the next SyncConnected brings another resync.
            Err(e) => tracing::warn!(path = %self.path, error = %e, "cannot read watched path"),
        }
        if self.goal().is_some() {
            if let Err(e) = self.enforce(false).await {
                tracing::warn!(path = %self.path, error = %e, "cannot restore registration");
            }
        }
    }

    /// Reads data and children (one pipelined round trip).
    async fn read(&mut self) -> Result<()> {
        let read = read_node(&self.shared, &self.client, &self.path).await?;
        self.take(read);
        Ok(())
    }

    fn take(&mut self, read: crate::session::NodeRead) {
        self.node = read.node;
        self.children = read.children.into_iter().collect();
    }

    fn publish(&self) {
        let node = self.node.as_ref().map(|(bytes, stat)| (bytes.as_slice(), *stat));
        self.shared.cache.publish(Snapshot::of_node(&self.path, node, self.children.iter().cloned()));
    }

    fn goal(&self) -> Option<Goal> {
        self.shared.desired().get(&*self.path).and_then(|d| d.goal.clone())
    }

    fn remember(&mut self, written: Option<Written>) {
        if let Some(w) = written {
            if self.node.is_none() {
                self.children.clear();
            }
            self.node = Some((w.bytes, Stat::from(&w.stat)));
            self.publish();
        }
    }

    /// Brings the node to its registration's goal. `requested`: a caller
    /// asked for it just now (not an event or a reconnect).
    pub(crate) async fn enforce(&mut self, requested: bool) -> Result<()> {
        let Some(goal) = self.goal() else { return Ok(()) };
        // Already so, as far as the watch tells: nothing to ask ZooKeeper.
        // (A change the watch has not delivered yet triggers enforcement
        // again when it arrives.)
        if let (Goal::Ephemeral(bytes), Some((have, stat))) = (&goal, &self.node) {
            if self.known && have == bytes && stat.ephemeral_owner == self.client.session_id().0 {
                return Ok(());
            }
        }
        if let Goal::Ephemeral(_) = goal {
            self.back_off_dropped_writes(&goal).await?;
        }
        let written = reconcile::enforce(&self.shared, &self.client, &self.path, &goal, requested).await?;
        self.remember(written);
        Ok(())
    }

    /// A registration whose writes keep losing the connection (a request
    /// the server will not read) waits longer before each new attempt, and
    /// is given up after [`MAX_WRITE_DROPS`] in a row, instead of
    /// reconnecting in a tight loop.
    async fn back_off_dropped_writes(&self, goal: &Goal) -> Result<()> {
        let drops = self.shared.desired().get(&*self.path).map_or(0, |d| d.drops);
        if drops == 0 {
            return Ok(());
        }
        if drops >= MAX_WRITE_DROPS {
            let mut desired = self.shared.desired();
            if let Some(desire) = desired.get_mut(&*self.path) {
                if desire.goal.as_ref() == Some(goal) {
                    desire.goal = None;
                    desire.drops = 0;
                }
            }
            drop(desired);
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
        let written =
            reconcile::set_data(&self.shared, &self.client, &self.path, &bytes, keep_defaults).await?;
        self.remember(written);
        Ok(())
    }
}

/// Writes of one registration in a row that lost the connection before it
/// is given up (`Error::WriteDropped`).
pub(crate) const MAX_WRITE_DROPS: u32 = 4;

#[cfg(test)]
mod tests {
    /// A path at rest costs its `PathState` (plus its data and children):
    /// keep it small, it exists once per watched path.
    #[test]
    fn a_path_at_rest_is_small() {
        let size = std::mem::size_of::<super::PathState>();
        assert!(size <= 160, "a PathState is {size} bytes");
    }
}
