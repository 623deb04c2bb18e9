//! The hub: one task per registry that owns every path's record and does
//! its work.
//!
//! The hub owns what the program asked of each path (a registration's goal
//! and counts, in the path's [`Record`]), the sessions this registry held
//! before (whose ephemeral nodes are ours to replace) and the current
//! session's client, which the supervisor hands it (`HubCmd::Session`) and
//! takes back (`HubCmd::Lost`). Callers reach it by a bounded command
//! channel (`commands.rs`); what they want watched reaches it through the
//! cache's notes.
//!
//! A path is a record, not a task: between operations it costs its record
//! (a pointer to its cached snapshot, a digest, its goal). Its watch is one
//! of the session's roots in the watch table (`watch_table.rs`), shared
//! with other paths where it can be. The hub owns the roots' watchers and
//! runs at most one operation per path at a time (its start, a batch of
//! events, a caller's command), all of them concurrently on the one
//! connection; events and commands that arrive while a path is busy wait in
//! its record and are taken, coalesced, when its operation ends. So a write
//! and the reads that follow it can never overtake each other. At most
//! `RegistryBuilder::max_in_flight` operations run at once (128 by
//! default); the others wait their turn, in order.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use futures::future::{AbortHandle, Aborted};
use futures::stream::FuturesUnordered;
use futures::{Future, StreamExt};
use tokio::sync::mpsc;
use zookeeper_client::{Client, EventType, PersistentWatcher, SessionState, WatchedEvent};

use crate::path::parent;
use crate::session::actor::{Actor, Batch, Lent, Outcome};
use crate::session::parents::Parents;
use crate::session::record::Record;
use crate::session::watch_table::{self, Cover, Generation, Phase, Root, WatchTable};
use crate::session::{ActorCmd, Goal, HubCmd, Lease, PastSessions, Shared};

/// At most this many queued commands are taken before their paths start.
const BURST: usize = 4096;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A root's watcher waiting for its next event (and handed back with it).
type Armed = BoxFuture<(Arc<str>, Generation, Result<(WatchedEvent, PersistentWatcher), Aborted>)>;

/// A root's watch being added: the watcher, `None` when the session ended,
/// an error when the server refused a shared root.
type Adding = BoxFuture<(Arc<str>, Generation, Result<crate::Result<Option<PersistentWatcher>>, Aborted>)>;

/// A path's operation in flight, handing back what it was lent.
type Op = BoxFuture<(Arc<str>, Generation, Result<Outcome, Aborted>)>;

/// Runs the hub until the registry closes (`HubCmd::Close` from the
/// supervisor).
pub(crate) async fn run(shared: Arc<Shared>, mut cmds: mpsc::Receiver<HubCmd>) {
    let cache = shared.cache.clone();
    let mut hub = Hub {
        shared,
        client: None,
        epoch: 0,
        past: Arc::default(),
        parents: Arc::default(),
        records: HashMap::new(),
        watches: WatchTable::default(),
        next_generation: 0,
        armed: FuturesUnordered::new(),
        adding: FuturesUnordered::new(),
        ops: FuturesUnordered::new(),
        waiting: VecDeque::new(),
        dead: false,
        registrations: 0,
        given_up: 0,
    };
    loop {
        // What callers wanted watched before their later commands.
        hub.notes();
        tokio::select! {
            () = cache.noted() => {}
            cmd = cmds.recv() => {
                let Some(cmd) = cmd else { return };
                hub.notes();
                // Takes what else is queued before starting any path, so
                // that paths arriving together (a burst of registrations)
                // are counted before their covers are chosen.
                let mut starting = Vec::new();
                let mut next = Some(cmd);
                while let Some(cmd) = next.take() {
                    if matches!(cmd, HubCmd::Close) {
                        return;
                    }
                    starting.extend(hub.command(cmd));
                    if starting.len() < BURST {
                        next = cmds.try_recv().ok();
                        if next.is_some() {
                            // A note made before the next command is
                            // seen first.
                            hub.notes();
                        }
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
                if let Ok(outcome) = done {
                    hub.finished(path, generation, outcome);
                }
                hub.admit_waiting();
            }
        }
    }
}

struct Hub {
    shared: Arc<Shared>,
    /// The session's client (`None` between sessions), and its epoch.
    client: Option<Client>,
    epoch: u64,
    /// The parents this registry made: lent to operations and leases.
    parents: Arc<Parents>,
    /// The sessions this registry held before: their ephemeral nodes are
    /// ours to replace (pitfall 3: the client may declare expiry before
    /// the server does). Lent to every operation.
    past: Arc<PastSessions>,
    /// Boxed: a table's empty buckets (up to half of them) then cost a
    /// pointer, not a record.
    records: HashMap<Arc<str>, Box<Record>>,
    watches: WatchTable,
    next_generation: Generation,
    armed: FuturesUnordered<Armed>,
    adding: FuturesUnordered<Adding>,
    ops: FuturesUnordered<Op>,
    /// Paths with work, waiting for room among the operations in flight.
    waiting: VecDeque<(Arc<str>, Generation)>,
    /// The session ended (a terminal event): nothing more until the next.
    dead: bool,
    /// Records with a registration's goal, and with one given up (gauges).
    registrations: usize,
    given_up: usize,
}

impl Hub {
    /// Takes a command; returns the path whose next step is due.
    fn command(&mut self, cmd: HubCmd) -> Option<Arc<str>> {
        match cmd {
            HubCmd::Session { client, epoch } => {
                self.session(client, epoch);
                None
            }
            HubCmd::Lost { session } => {
                self.lost(session);
                None
            }
            HubCmd::Close => None,
            HubCmd::Goal { path, goal, reply } => {
                let path = self.ensure(&path);
                let previous = self.set_goal(&path, Some(goal));
                if let Some(record) = self.records.get_mut(&path) {
                    // A new goal starts its counts afresh (those lent to a
                    // running operation are dropped when it ends).
                    record.counters = None;
                    record.counters_stale = !record.is_idle();
                    if record.given_up.take().is_some() {
                        self.given_up -= 1;
                    }
                }
                let _ = reply.send(previous);
                Some(path)
            }
            HubCmd::Restore { path, failed, previous, reply } => {
                if let Some((key, record)) = self.records.get_key_value(path.as_str()) {
                    let key = key.clone();
                    if record.goal.as_ref() == Some(&failed) {
                        self.set_goal(&key, previous);
                    }
                    // (A registration given up meanwhile has no goal left.)
                    self.forget_if_unwanted(&key);
                }
                let _ = reply.send(());
                None
            }
            HubCmd::Unset { path, reply } => {
                let registered = match self.records.get_key_value(path.as_str()) {
                    Some((key, record)) if record.goal.is_some() => {
                        let key = key.clone();
                        self.set_goal(&key, Some(Goal::Absent));
                        true
                    }
                    _ => false,
                };
                let _ = reply.send(registered);
                None
            }
            HubCmd::Watch { path, reply } => {
                let registered = self
                    .records
                    .get(path.as_str())
                    .is_some_and(|r| matches!(r.goal, Some(Goal::Ephemeral(_))));
                if registered {
                    let _ = reply.send(false);
                    return None;
                }
                let key = self.shared.cache.pin(&path, crate::cache::WATCHED);
                let _ = reply.send(true);
                Some(self.ensure(&key))
            }
            HubCmd::Path(path, cmd) => {
                let path = self.ensure(&path);
                if let Some(record) = self.records.get_mut(&path) {
                    record.pending().cmds.push_back(cmd);
                }
                Some(path)
            }
            HubCmd::Lease { epoch, reply } => {
                // None once the registry is closing: its session must end.
                let closing = *self.shared.state.borrow() == crate::session::State::Closed;
                let lendable = !self.dead && !closing && self.epoch == epoch;
                if let Some(client) = self.client.as_ref().filter(|_| lendable) {
                    let _ =
                        reply.send(Lease { client: client.clone(), epoch, parents: self.parents.clone() });
                }
                None
            }
        }
    }

    /// Takes the cache's notes: paths now wanted start, paths no longer
    /// wanted are forgotten.
    fn notes(&mut self) {
        let notes = self.shared.cache.take_notes();
        for (path, unwatched) in notes {
            if unwatched {
                // `unwatch` ends keeping an unset registration's path absent.
                if self.records.get(&path).is_some_and(|r| r.goal == Some(Goal::Absent)) {
                    self.set_goal(&path, None);
                }
            }
            if self.forget_if_unwanted(&path) {
                continue;
            }
            let path = self.ensure(&path);
            if let Some(record) = self.records.get_mut(&path) {
                // Its cache entry went (its last subscriber or `unwatch`)
                // and came back empty: read the path afresh for its new
                // subscribers, after the operation that runs, if one does
                // (it may have published to the entry that went).
                if self.shared.cache.get(&path).is_none() {
                    record.set_unstarted(true);
                }
            }
            self.next_step(&path);
        }
    }

    /// Makes `goal` the path's goal (the cache pins follow); returns the
    /// goal it replaced.
    fn set_goal(&mut self, path: &Arc<str>, goal: Option<Goal>) -> Option<Goal> {
        let record = self.records.get_mut(path)?;
        let registered = matches!(goal, Some(Goal::Ephemeral(_)));
        self.shared.cache.set_goal_pins(path, Goal::pins(goal.as_ref()));
        let previous = std::mem::replace(&mut record.goal, goal);
        let was = matches!(previous, Some(Goal::Ephemeral(_)));
        self.registrations = self.registrations + usize::from(registered) - usize::from(was);
        self.gauges();
        previous
    }

    /// Forgets `path` if nothing wants it any more (no goal, and nothing in
    /// the cache); `true`: it is gone.
    ///
    /// A record with a goal, a caller's command waiting, or an operation
    /// running stays (its caller hears the outcome first); it is looked at
    /// again when its operation ends.
    fn forget_if_unwanted(&mut self, path: &str) -> bool {
        if self.records.get(path).is_some_and(|r| r.goal.is_some() || r.has_commands() || !r.is_idle()) {
            return false;
        }
        if !self.shared.cache.remove_if_unwanted(path) {
            return false;
        }
        if let Some(record) = self.records.remove(path) {
            record.abort();
            self.watches.unwanted(path, record.cover.as_ref());
            if record.given_up.is_some() {
                self.given_up -= 1;
            }
            self.gauges();
        }
        true
    }

    /// Publishes the gauges of `Registry::stats`.
    fn gauges(&self) {
        let counters = &self.shared.counters;
        counters.watched_paths.store(self.records.len(), Relaxed);
        counters.registrations.store(self.registrations, Relaxed);
        counters.registrations_given_up.store(self.given_up, Relaxed);
    }

    /// A new session: every record starts afresh with its client,
    /// registrations first, so that watchers of a service see our own
    /// members back before they re-read the member list.
    fn session(&mut self, client: Client, epoch: u64) {
        tracing::debug!(epoch, "the hub has a new session");
        self.stop_work();
        self.client = Some(client);
        self.epoch = epoch;
        self.dead = false;
        let mut paths: Vec<(bool, Arc<str>)> = Vec::with_capacity(self.records.len());
        for (path, record) in &mut self.records {
            self.next_generation += 1;
            record.restart(self.next_generation);
            paths.push((record.goal.is_none(), path.clone()));
        }
        paths.sort_by_key(|(watch_only, _)| *watch_only);
        for (_, path) in &paths {
            self.watches.wanted(path);
        }
        for (_, path) in &paths {
            self.next_step(path);
        }
    }

    /// The session is lost: nothing runs until the next; what callers
    /// asked for is kept.
    fn lost(&mut self, session: Option<i64>) {
        if let Some(id) = session {
            Arc::make_mut(&mut self.past).insert(id);
        }
        self.stop_work();
        self.client = None;
        for record in self.records.values_mut() {
            self.next_generation += 1;
            record.restart(self.next_generation);
        }
    }

    /// Drops every operation, watch and watcher of the session (and so
    /// every clone of its client: pitfall 15, the session closes once the
    /// last is dropped).
    fn stop_work(&mut self) {
        self.ops = FuturesUnordered::new();
        self.armed = FuturesUnordered::new();
        self.adding = FuturesUnordered::new();
        self.waiting.clear();
        self.watches = WatchTable::default();
    }

    fn generation(&mut self) -> Generation {
        self.next_generation += 1;
        self.next_generation
    }

    /// The key of `path`'s record, made (not started yet) if there is none:
    /// the cache's interned name when it has one.
    fn ensure(&mut self, path: &str) -> Arc<str> {
        if let Some((key, _)) = self.records.get_key_value(path) {
            return key.clone();
        }
        let key = self.shared.cache.key(path).unwrap_or_else(|| Arc::from(path));
        let record = Box::new(Record::new(self.generation()));
        self.records.insert(key.clone(), record);
        if self.client.is_some() {
            self.watches.wanted(&key);
        }
        self.gauges();
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
            match client {
                Some(client) => watch_table::add_watch(&shared, &client, &path, shared_root).await,
                None => Ok(None),
            }
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

    /// The session ended (a terminal event): nothing more is done until
    /// the supervisor hands over the next one; callers' commands wait in
    /// their records for it.
    fn die(&mut self) {
        self.dead = true;
    }

    fn finished(&mut self, path: Arc<str>, generation: Generation, outcome: Outcome) {
        let Some(record) = self.records.get_mut(&path).filter(|r| r.generation == generation) else {
            return;
        };
        record.become_idle();
        record.state = outcome.state;
        let counters = outcome.counters;
        if !std::mem::take(&mut record.counters_stale) {
            record.counters = (!counters.is_empty()).then_some(counters);
        }
        if let Some((goal, drops)) = outcome.gave_up {
            // Given up (see `Actor::back_off_dropped_writes`), unless the
            // goal changed meanwhile.
            if record.goal.as_ref() == Some(&goal) {
                record.counters = None;
                if record.given_up.replace(drops).is_none() {
                    self.given_up += 1;
                }
                // A caller's command waiting behind this operation learns
                // why before the record goes.
                self.set_goal(&path, None);
            }
        }
        // A record nothing wants any more goes once no caller's command
        // waits in it (see `forget_if_unwanted`).
        if self.forget_if_unwanted(&path) {
            return;
        }
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
    /// in flight are at their bound, and for a session when there is none.
    fn next_step(&mut self, path: &Arc<str>) {
        let Some(client) = self.client.clone().filter(|_| !self.dead) else { return };
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
        let lend = |record: &mut Record| Lent {
            shared: self.shared.clone(),
            client: client.clone(),
            past: self.past.clone(),
            parents: self.parents.clone(),
            state: std::mem::take(&mut record.state),
            goal: record.goal.clone(),
            counters: record.counters.take().unwrap_or_default(),
            given_up: record.given_up,
        };
        let mut actor = Actor::new(path.clone(), lend(record));
        if record.set_unstarted(false) {
            let op: BoxFuture<Outcome> = Box::pin(async move {
                Box::pin(actor.start()).await;
                actor.into_outcome()
            });
            return self.start_op(path, op);
        }
        let pending = record.pending();
        while let Some(cmd) = pending.cmds.pop_front() {
            let op: BoxFuture<Outcome> = match cmd {
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
                        actor.into_outcome()
                    })
                }
                ActorCmd::SetData { bytes, keep_defaults, reply } if reply.start() => Box::pin(async move {
                    reply.send(Box::pin(actor.set_data(bytes, keep_defaults)).await);
                    actor.into_outcome()
                }),
                ActorCmd::Enforce(_) | ActorCmd::SetData { .. } => continue,
            };
            return self.start_op(path, op);
        }
        let Outcome { state, counters, .. } = actor.into_outcome();
        let mut batch = Batch::default();
        batch.reconnected = std::mem::take(&mut pending.reconnected);
        for event in pending.events.drain(..) {
            state.note(path, &event, &mut batch);
        }
        record.pending = None;
        if batch.is_empty() {
            record.state = state;
            record.counters = (!counters.is_empty()).then_some(counters);
            return;
        }
        record.state = state;
        record.counters = Some(counters);
        let mut actor = Actor::new(path.clone(), lend(record));
        let op: BoxFuture<Outcome> = Box::pin(async move {
            Box::pin(actor.apply(batch)).await;
            actor.into_outcome()
        });
        self.start_op(path, op);
    }

    fn start_op(&mut self, path: &Arc<str>, op: BoxFuture<Outcome>) {
        let Some(record) = self.records.get_mut(path) else { return };
        let (op, handle) = futures::future::abortable(op);
        record.become_busy(handle);
        let (path, generation) = (path.clone(), record.generation);
        self.ops.push(Box::pin(async move { (path, generation, op.await) }));
    }
}
