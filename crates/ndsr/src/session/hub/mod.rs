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
//!
//! Files: this one has the loop and the records' operations;
//! `requests.rs` what callers and the supervisor ask (commands, the cache's
//! notes, goals, sessions); `watches.rs` the covers, the roots' watchers and
//! their events.

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

/// At most this many queued commands are taken at once (before their paths
/// start, and before completions and events get their turn).
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
    let mut hub = Hub::new(shared);
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
                let mut taken = 0;
                while let Some(cmd) = next.take() {
                    if matches!(cmd, HubCmd::Close) {
                        return;
                    }
                    starting.extend(hub.command(cmd));
                    taken += 1;
                    if taken < BURST {
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
    /// Registrations given up whose records went (nothing else wanted the
    /// path): the record a caller's `Enforce` makes when it reaches the
    /// hub only after that (its `set_node` was slow to send it, or resent
    /// it after a reconnect) takes the count back, so that the caller hears
    /// `WriteDropped`, not a success. Kept until the path's next goal or
    /// `unset`.
    gave_up: HashMap<Arc<str>, u32>,
    /// Registrations given up and then unset while a caller's command still
    /// waited in the record: their count goes with the record, not into
    /// `gave_up`.
    unset_given_up: std::collections::HashSet<Arc<str>>,
    /// Records with a registration's goal, and registrations given up
    /// (`gave_up` included) (gauges).
    registrations: usize,
    given_up: usize,
}

mod requests;
#[cfg(test)]
mod tests;
mod watches;

impl Hub {
    fn new(shared: Arc<Shared>) -> Hub {
        Hub {
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
            gave_up: HashMap::new(),
            unset_given_up: Default::default(),
            registrations: 0,
            given_up: 0,
        }
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
        let mut record = Box::new(Record::new(self.generation()));
        // (Still counted in the gauge.)
        record.given_up = self.gave_up.remove(path);
        self.records.insert(key.clone(), record);
        if self.client.is_some() {
            self.watches.wanted(&key);
        }
        self.gauges();
        key
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
        // waits in it (see `forget_if_unwanted`); and again after the next
        // step, which may have dropped withdrawn commands and started
        // nothing.
        if self.forget_if_unwanted(&path) {
            return;
        }
        self.next_step(&path);
        if self.records.get(&path).is_some_and(|r| r.is_idle()) {
            self.forget_if_unwanted(&path);
        }
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
