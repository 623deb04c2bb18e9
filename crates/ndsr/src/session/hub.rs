//! The hub: one task per session epoch that does the work of every path.
//!
//! A path is a record, not a task: between operations it costs its
//! [`PathState`] (a pointer to its cached snapshot and a digest). Its watch
//! is one of the epoch's roots in the watch table (`watch_table.rs`),
//! shared with other paths where it can be. The hub owns the roots'
//! watchers and runs at most one operation per path at a time (its start,
//! a batch of events, a caller's command), all of them concurrently on the
//! one connection; events and commands that arrive while a path is busy
//! wait in its record and are taken, coalesced, when its operation ends. So
//! a write and the reads that follow it can never overtake each other. At
//! most `RegistryBuilder::max_in_flight` operations run at once (128 by
//! default); the others wait their turn, in order.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;

use futures::future::{AbortHandle, Aborted};
use futures::stream::FuturesUnordered;
use futures::{Future, StreamExt};
use zookeeper_client::{Client, EventType, PersistentWatcher, SessionState, WatchedEvent};

use crate::path::parent;
use crate::session::actor::{Actor, Batch, PathState};
use crate::session::record::Record;
use crate::session::watch_table::{self, Cover, Generation, Phase, Root, WatchTable};
use crate::session::{ActorCmd, Shared};

/// A request to the hub.
pub(crate) enum HubCmd {
    /// Start working on `path` (nothing if it is already there).
    Watch(Arc<str>),
    /// Forget `path`: any operation in flight is dropped, and its watch
    /// with it unless it covers other paths.
    Stop(String),
    /// A caller's command for `path` (started first if needed).
    Path(Arc<str>, ActorCmd),
}

/// At most this many queued commands are taken before their paths start.
const BURST: usize = 4096;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A root's watcher waiting for its next event (and handed back with it).
type Armed = BoxFuture<(Arc<str>, Generation, Result<(WatchedEvent, PersistentWatcher), Aborted>)>;

/// A root's watch being added: the watcher, `None` when the session ended,
/// an error when the server refused a shared root.
type Adding = BoxFuture<(Arc<str>, Generation, Result<crate::Result<Option<PersistentWatcher>>, Aborted>)>;

/// A path's operation in flight, handing back the path's state.
type Op = BoxFuture<(Arc<str>, Generation, Result<PathState, Aborted>)>;

pub(crate) async fn run(
    shared: Arc<Shared>,
    client: Client,
    mut cmds: futures::channel::mpsc::UnboundedReceiver<HubCmd>,
) {
    let mut hub = Hub {
        shared,
        client,
        records: HashMap::new(),
        watches: WatchTable::default(),
        next_generation: 0,
        armed: FuturesUnordered::new(),
        adding: FuturesUnordered::new(),
        ops: FuturesUnordered::new(),
        waiting: VecDeque::new(),
        dead: false,
    };
    loop {
        tokio::select! {
            cmd = cmds.next() => {
                let Some(cmd) = cmd else { return };
                // Takes what else is queued before starting any path, so
                // that paths arriving together (an epoch's restore, a burst
                // of gets) are counted before their covers are chosen.
                let mut starting = Vec::new();
                starting.extend(hub.command(cmd));
                while starting.len() < BURST {
                    match cmds.try_recv() {
                        Ok(cmd) => starting.extend(hub.command(cmd)),
                        Err(_) => break,
                    }
                }
                for path in &starting {
                    hub.next_step(path);
                }
            }
            Some((root, generation, fired)) = hub.armed.next(), if !hub.armed.is_empty() => {
                if let Ok((event, watcher)) = fired {
                    hub.event(root, generation, event, watcher);
                }
            }
            Some((root, generation, added)) = hub.adding.next(), if !hub.adding.is_empty() => {
                if let Ok(added) = added {
                    hub.added(root, generation, added);
                }
            }
            Some((path, generation, done)) = hub.ops.next(), if !hub.ops.is_empty() => {
                if let Ok(state) = done {
                    hub.finished(path, generation, state);
                }
                hub.admit_waiting();
            }
        }
    }
}

struct Hub {
    shared: Arc<Shared>,
    client: Client,
    records: HashMap<Arc<str>, Record>,
    watches: WatchTable,
    next_generation: Generation,
    armed: FuturesUnordered<Armed>,
    adding: FuturesUnordered<Adding>,
    ops: FuturesUnordered<Op>,
    /// Paths with work, waiting for room among the operations in flight.
    waiting: VecDeque<(Arc<str>, Generation)>,
    /// The session ended (a terminal event): nothing more in this epoch.
    dead: bool,
}

impl Hub {
    /// Takes a command; returns the path whose next step is due.
    fn command(&mut self, cmd: HubCmd) -> Option<Arc<str>> {
        match cmd {
            HubCmd::Watch(path) => Some(self.ensure(path)),
            HubCmd::Stop(path) => {
                if let Some(record) = self.records.remove(path.as_str()) {
                    record.abort();
                    self.watches.unwanted(&path, record.cover.as_ref());
                }
                None
            }
            HubCmd::Path(path, cmd) => {
                let path = self.ensure(path);
                if let Some(record) = self.records.get_mut(&path) {
                    record.pending().cmds.push_back(cmd);
                }
                Some(path)
            }
        }
    }

    fn generation(&mut self) -> Generation {
        self.next_generation += 1;
        self.next_generation
    }

    /// The key of `path`'s record, made (not started yet) if there is none.
    fn ensure(&mut self, key: Arc<str>) -> Arc<str> {
        if let Some((key, _)) = self.records.get_key_value(&key) {
            return key.clone();
        }
        let record = Record::new(self.generation());
        self.records.insert(key.clone(), record);
        self.watches.wanted(&key);
        key
    }

    /// Gives a starting path its cover; `false` while that root's watch is
    /// being added (the path starts once it is in place).
    fn cover(&mut self, path: &Arc<str>) -> bool {
        let Some(record) = self.records.get(path) else { return false };
        if let Some(cover) = &record.cover {
            let adding =
                self.watches.roots.get(cover).is_some_and(|r| matches!(r.phase, Phase::Adding { .. }));
            return !adding;
        }
        let root = match self.watches.choose(path, self.shared.config.share_parent_watch_at_or_default()) {
            Cover::Existing(root) => root,
            Cover::New { at, shared } => self.add_root(at, shared),
        };
        if let Some(record) = self.records.get_mut(path) {
            record.cover = Some(root.clone());
        }
        let Some(root) = self.watches.roots.get_mut(&root) else { return false };
        root.members.insert(path.clone());
        match &mut root.phase {
            Phase::Adding { waiting, .. } => {
                waiting.push(path.clone());
                false
            }
            _ => true,
        }
    }

    /// Starts adding a root's watch.
    fn add_root(&mut self, at: String, shared: bool) -> Arc<str> {
        let key: Arc<str> = match self.records.get_key_value(at.as_str()) {
            Some((key, _)) => key.clone(),
            None => Arc::from(at),
        };
        let generation = self.generation();
        let op = self.start_add(&key, generation, shared);
        let root = Root {
            generation,
            members: Default::default(),
            shared,
            phase: Phase::Adding { op, waiting: Vec::new() },
        };
        self.watches.roots.insert(key.clone(), root);
        key
    }

    fn start_add(&mut self, root: &Arc<str>, generation: Generation, shared_root: bool) -> AbortHandle {
        let (shared, client, path) = (self.shared.clone(), self.client.clone(), root.clone());
        let (adding, handle) = futures::future::abortable(async move {
            watch_table::add_watch(&shared, &client, &path, shared_root).await
        });
        let root = root.clone();
        self.adding.push(Box::pin(async move { (root, generation, adding.await) }));
        handle
    }

    /// A root's watch was added (again).
    fn added(
        &mut self,
        key: Arc<str>,
        generation: Generation,
        added: crate::Result<Option<PersistentWatcher>>,
    ) {
        if !self.watches.roots.get(&key).is_some_and(|r| r.generation == generation) {
            return;
        }
        let watcher = match added {
            Ok(Some(watcher)) => watcher,
            Ok(None) => return self.die(),
            Err(e) => {
                // A shared parent the server will not let us watch: its
                // paths watch themselves.
                tracing::info!(path = %key, error = %e, "cannot share this parent's watch; its paths watch themselves");
                self.watches.refuse(&key);
                let Some(root) = self.watches.roots.remove(&key) else { return };
                for member in root.members {
                    if let Some(record) = self.records.get_mut(&member) {
                        // Started afresh (a re-read is harmless).
                        record.cover = None;
                        record.set_unstarted(true);
                    }
                    self.next_step(&member);
                }
                return;
            }
        };
        let armed = self.arm(&key, generation, watcher);
        let Some(root) = self.watches.roots.get_mut(&key) else { return };
        // The old watcher (after a reconnect) goes now that the new one is
        // in place.
        match std::mem::replace(&mut root.phase, Phase::Armed(armed)) {
            Phase::Adding { waiting, .. } => {
                for member in waiting {
                    self.next_step(&member);
                }
            }
            Phase::Readding { held, .. } => {
                drop(held);
                let members: Vec<Arc<str>> = root.members.iter().cloned().collect();
                for member in members {
                    if let Some(record) = self.records.get_mut(&member) {
                        record.pending().reconnected = true;
                    }
                    self.next_step(&member);
                }
            }
            Phase::Armed(_) => {}
        }
    }

    /// Waits for the next event of a root's watcher.
    fn arm(&mut self, root: &Arc<str>, generation: Generation, watcher: PersistentWatcher) -> AbortHandle {
        let (waiting, handle) = futures::future::abortable(async move {
            let mut watcher = watcher;
            let event = watcher.changed().await;
            (event, watcher)
        });
        let root = root.clone();
        self.armed.push(Box::pin(async move { (root, generation, waiting.await) }));
        handle
    }

    fn event(
        &mut self,
        key: Arc<str>,
        generation: Generation,
        event: WatchedEvent,
        watcher: PersistentWatcher,
    ) {
        if !self.watches.roots.get(&key).is_some_and(|r| r.generation == generation) {
            return;
        }
        if event.event_type == EventType::Session {
            if event.session_state.is_terminated() {
                // pitfall 11: never await the watcher after a terminal event.
                return self.die();
            }
            if matches!(event.session_state, SessionState::SyncConnected | SessionState::ConnectedReadOnly) {
                let shared_root = self.watches.roots.get(&key).is_some_and(|r| r.shared);
                let op = self.start_add(&key, generation, shared_root);
                if let Some(root) = self.watches.roots.get_mut(&key) {
                    root.phase = Phase::Readding { op, held: watcher };
                }
            } else {
                let armed = self.arm(&key, generation, watcher);
                if let Some(root) = self.watches.roots.get_mut(&key) {
                    root.phase = Phase::Armed(armed);
                }
            }
            return;
        }
        let armed = self.arm(&key, generation, watcher);
        if let Some(root) = self.watches.roots.get_mut(&key) {
            root.phase = Phase::Armed(armed);
        }
        // The event concerns the node it names and that node's parent.
        let targets = [Some(event.path.as_str()), parent(&event.path)];
        for target in targets.into_iter().flatten() {
            let Some((path, _)) = self.records.get_key_value(target) else { continue };
            let path = path.clone();
            let Some(record) = self.records.get_mut(&path) else { continue };
            if record.cover.as_ref() != Some(&key) {
                continue; // another root delivers it to this path
            }
            record.pending().events.push(event.clone());
            self.next_step(&path);
        }
    }

    /// The session ended: nothing more is done in this epoch; callers
    /// waiting on a path follow it to the next session.
    fn die(&mut self) {
        self.dead = true;
        for record in self.records.values_mut() {
            record.pending = None;
        }
    }

    fn finished(&mut self, path: Arc<str>, generation: Generation, state: PathState) {
        let Some(record) = self.records.get_mut(&path).filter(|r| r.generation == generation) else {
            return;
        };
        record.become_idle();
        record.state = state;
        self.next_step(&path);
    }

    /// Starts the operations of waiting paths while there is room.
    fn admit_waiting(&mut self) {
        while self.ops.len() < self.shared.config.max_in_flight {
            let Some((path, generation)) = self.waiting.pop_front() else { return };
            if let Some(record) = self.records.get_mut(&path).filter(|r| r.generation == generation) {
                record.become_idle();
                self.next_step(&path);
            }
        }
    }

    /// Starts the path's next operation if it is idle and has work: its
    /// start (once its watch is in place), then commands (in order), then
    /// the events so far as one batch. Waits its turn when the operations
    /// in flight are at their bound.
    fn next_step(&mut self, path: &Arc<str>) {
        if self.dead {
            if let Some(record) = self.records.get_mut(path) {
                record.pending = None;
            }
            return;
        }
        let Some(record) = self.records.get(path) else { return };
        if !record.is_idle() || !record.has_work() {
            return;
        }
        if record.unstarted() && !self.cover(path) {
            return;
        }
        let Some(record) = self.records.get_mut(path) else { return };
        if self.ops.len() >= self.shared.config.max_in_flight {
            record.become_queued();
            self.waiting.push_back((path.clone(), record.generation));
            return;
        }
        let state = std::mem::take(&mut record.state);
        let mut actor = Actor::new(self.shared.clone(), self.client.clone(), path.clone(), state);
        if record.set_unstarted(false) {
            let op: BoxFuture<PathState> = Box::pin(async move {
                Box::pin(actor.start()).await;
                actor.into_state()
            });
            return self.start_op(path, op);
        }
        let pending = record.pending();
        while let Some(cmd) = pending.cmds.pop_front() {
            let op: BoxFuture<PathState> = match cmd {
                // A command whose caller gave up before it started is
                // dropped (a registration's goal is still enforced on
                // events and reconnects).
                ActorCmd::Enforce(reply) if reply.start() => {
                    if actor.goal_holds() {
                        // Already so: answered at once, without an operation.
                        reply.send(Ok(()));
                        continue;
                    }
                    Box::pin(async move {
                        reply.send(Box::pin(actor.enforce(true)).await);
                        actor.into_state()
                    })
                }
                ActorCmd::SetData { bytes, keep_defaults, reply } if reply.start() => Box::pin(async move {
                    reply.send(Box::pin(actor.set_data(bytes, keep_defaults)).await);
                    actor.into_state()
                }),
                ActorCmd::Ready(reply) => {
                    let _ = reply.send(());
                    continue;
                }
                ActorCmd::Enforce(_) | ActorCmd::SetData { .. } => continue,
            };
            return self.start_op(path, op);
        }
        let state = actor.into_state();
        let mut batch = Batch::default();
        batch.reconnected = std::mem::take(&mut pending.reconnected);
        for event in pending.events.drain(..) {
            state.note(path, &event, &mut batch);
        }
        record.pending = None;
        if batch.is_empty() {
            record.state = state;
            return;
        }
        let mut actor = Actor::new(self.shared.clone(), self.client.clone(), path.clone(), state);
        let op: BoxFuture<PathState> = Box::pin(async move {
            Box::pin(actor.apply(batch)).await;
            actor.into_state()
        });
        self.start_op(path, op);
    }

    fn start_op(&mut self, path: &Arc<str>, op: BoxFuture<PathState>) {
        let Some(record) = self.records.get_mut(path) else { return };
        let (op, handle) = futures::future::abortable(op);
        record.become_busy(handle);
        let (path, generation) = (path.clone(), record.generation);
        self.ops.push(Box::pin(async move { (path, generation, op.await) }));
    }
}
