//! The hub: one task per session epoch that does the work of every path.
//!
//! A path is a record, not a task: between operations it costs its
//! [`PathState`] and one armed watcher. The hub owns every path's
//! persistent watcher and runs at most one operation per path at a time
//! (its start, a batch of events, a caller's command), all of them
//! concurrently on the one connection; events and commands that arrive
//! while a path is busy wait in its record and are taken, coalesced, when
//! its operation ends. So a write and the reads that follow it can never
//! overtake each other, as with one task per path, without a task (about a
//! kilobyte) per path. At most `RegistryBuilder::max_in_flight` operations
//! run at once (512 by default); the others wait their turn, in order.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;

use futures::future::{AbortHandle, Aborted};
use futures::stream::FuturesUnordered;
use futures::{Future, StreamExt};
use zookeeper_client::{Client, PersistentWatcher, WatchedEvent};

use crate::session::actor::{Actor, Batch, PathState};
use crate::session::{ActorCmd, Shared};

/// A request to the hub.
pub(crate) enum HubCmd {
    /// Start working on `path` (nothing if it is already there).
    Watch(String),
    /// Forget `path`: its watcher and any operation in flight are dropped.
    Stop(String),
    /// A caller's command for `path` (started first if needed).
    Path(String, ActorCmd),
}

/// Each record gets a new generation, so that what an earlier record of
/// the same path left in flight is recognised and dropped.
type Generation = u64;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A watcher waiting for its next event (and handed back with it).
type Armed = BoxFuture<(Arc<str>, Generation, Result<(WatchedEvent, PersistentWatcher), Aborted>)>;

/// What an operation hands back: the path's state and, when it (re)added
/// the watch, the new watcher (`None` inside: the session ended).
type OpOutput = (PathState, Option<Option<PersistentWatcher>>);

/// An operation in flight.
type Op = BoxFuture<(Arc<str>, Generation, Result<OpOutput, Aborted>)>;

/// One path's record: small while the path is at rest (its state is boxed,
/// and what arrives while it is busy has a box of its own).
struct Record {
    generation: Generation,
    /// `None` while an operation runs.
    state: Option<Box<PathState>>,
    pending: Option<Box<Pending>>,
    /// The watcher while it waits for an event.
    armed: Option<AbortHandle>,
    op: Option<AbortHandle>,
    /// Not started yet: the first operation adds the watch and reads.
    unstarted: bool,
    /// Waiting for room among the operations in flight.
    queued: bool,
    /// The session ended for this path (a terminal event): nothing more.
    dead: bool,
}

/// What arrived for a path while it was busy, and a held watcher.
#[derive(Default)]
struct Pending {
    /// Events, in order.
    events: Vec<WatchedEvent>,
    /// Commands, in order.
    cmds: VecDeque<ActorCmd>,
    /// A watcher held back while its replacement is being added (never
    /// dropped first: dropping a path's last watcher removes the watch on
    /// the server).
    held: Option<PersistentWatcher>,
}

impl Record {
    fn pending(&mut self) -> &mut Pending {
        self.pending.get_or_insert_with(Default::default)
    }

    fn has_work(&self) -> bool {
        self.unstarted || self.pending.as_ref().is_some_and(|p| !p.events.is_empty() || !p.cmds.is_empty())
    }
}

pub(crate) async fn run(
    shared: Arc<Shared>,
    client: Client,
    mut cmds: futures::channel::mpsc::UnboundedReceiver<HubCmd>,
) {
    let mut hub = Hub {
        shared,
        client,
        records: HashMap::new(),
        next_generation: 0,
        armed: FuturesUnordered::new(),
        ops: FuturesUnordered::new(),
        waiting: VecDeque::new(),
    };
    loop {
        tokio::select! {
            cmd = cmds.next() => match cmd {
                None => return,
                Some(cmd) => hub.command(cmd),
            },
            Some((path, generation, fired)) = hub.armed.next(), if !hub.armed.is_empty() => {
                if let Ok((event, watcher)) = fired {
                    hub.event(path, generation, event, watcher);
                }
            }
            Some((path, generation, done)) = hub.ops.next(), if !hub.ops.is_empty() => {
                if let Ok((state, watcher)) = done {
                    hub.finished(path, generation, state, watcher);
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
    next_generation: Generation,
    armed: FuturesUnordered<Armed>,
    ops: FuturesUnordered<Op>,
    /// Paths with work, waiting for room among the operations in flight.
    waiting: VecDeque<(Arc<str>, Generation)>,
}

impl Hub {
    fn command(&mut self, cmd: HubCmd) {
        match cmd {
            HubCmd::Watch(path) => {
                let path = self.ensure(&path);
                self.next_step(&path);
            }
            HubCmd::Stop(path) => {
                if let Some(record) = self.records.remove(path.as_str()) {
                    for handle in record.armed.iter().chain(record.op.iter()) {
                        handle.abort();
                    }
                }
            }
            HubCmd::Path(path, cmd) => {
                let path = self.ensure(&path);
                if let Some(record) = self.records.get_mut(&path) {
                    record.pending().cmds.push_back(cmd);
                }
                self.next_step(&path);
            }
        }
    }

    /// The key of `path`'s record, made (not started yet) if there is none.
    fn ensure(&mut self, path: &str) -> Arc<str> {
        if let Some((key, _)) = self.records.get_key_value(path) {
            return key.clone();
        }
        self.next_generation += 1;
        let key: Arc<str> = Arc::from(path);
        let record = Record {
            generation: self.next_generation,
            state: Some(Box::new(PathState::new(key.clone()))),
            pending: None,
            armed: None,
            op: None,
            unstarted: true,
            queued: false,
            dead: false,
        };
        self.records.insert(key.clone(), record);
        key
    }

    /// Waits for the next event of `watcher`.
    fn arm(&mut self, path: &Arc<str>, watcher: PersistentWatcher) {
        let Some(record) = self.records.get_mut(path) else { return };
        let generation = record.generation;
        let (waiting, handle) = futures::future::abortable(async move {
            let mut watcher = watcher;
            let event = watcher.changed().await;
            (event, watcher)
        });
        record.armed = Some(handle);
        let path = path.clone();
        self.armed.push(Box::pin(async move { (path, generation, waiting.await) }));
    }

    fn event(
        &mut self,
        path: Arc<str>,
        generation: Generation,
        event: WatchedEvent,
        watcher: PersistentWatcher,
    ) {
        let Some(record) = self.records.get_mut(&path).filter(|r| r.generation == generation) else {
            return;
        };
        record.armed = None;
        let session = event.event_type == zookeeper_client::EventType::Session;
        let reconnected = session
            && matches!(
                event.session_state,
                zookeeper_client::SessionState::SyncConnected
                    | zookeeper_client::SessionState::ConnectedReadOnly
            );
        let terminated = session && event.session_state.is_terminated();
        record.pending().events.push(event);
        if terminated {
            // pitfall 11: never await the watcher after a terminal event.
            record.dead = true;
        } else if reconnected {
            // Re-added by the next operation; kept until then.
            record.pending().held = Some(watcher);
        } else {
            self.arm(&path, watcher);
        }
        self.next_step(&path);
    }

    fn finished(
        &mut self,
        path: Arc<str>,
        generation: Generation,
        state: PathState,
        watcher: Option<Option<PersistentWatcher>>,
    ) {
        let Some(record) = self.records.get_mut(&path).filter(|r| r.generation == generation) else {
            return;
        };
        record.op = None;
        record.state = Some(Box::new(state));
        match watcher {
            Some(Some(watcher)) => {
                // The new watcher is there: the held one may go now.
                if let Some(pending) = &mut record.pending {
                    pending.held = None;
                }
                self.arm(&path, watcher);
            }
            Some(None) => record.dead = true,
            None => {}
        }
        self.next_step(&path);
    }

    /// Starts the operations of waiting paths while there is room.
    fn admit_waiting(&mut self) {
        while self.ops.len() < self.shared.config.max_in_flight {
            let Some((path, generation)) = self.waiting.pop_front() else { return };
            if let Some(record) = self.records.get_mut(&path).filter(|r| r.generation == generation) {
                record.queued = false;
                self.next_step(&path);
            }
        }
    }

    /// Starts the path's next operation if it is idle and has work: its
    /// start, then commands (in order), then the events so far as one
    /// batch. Waits its turn when the operations in flight are at their
    /// bound.
    fn next_step(&mut self, path: &Arc<str>) {
        let Some(record) = self.records.get_mut(path) else { return };
        if record.dead {
            // The session is gone: answer nothing; callers follow the
            // path to the next session.
            record.pending = None;
            return;
        }
        if record.state.is_none() || record.queued || !record.has_work() {
            return;
        }
        if self.ops.len() >= self.shared.config.max_in_flight {
            record.queued = true;
            self.waiting.push_back((path.clone(), record.generation));
            return;
        }
        let Some(state) = record.state.take() else { return };
        let mut actor = Actor::new(self.shared.clone(), self.client.clone(), *state);
        if std::mem::take(&mut record.unstarted) {
            let op: BoxFuture<OpOutput> = Box::pin(async move {
                let watcher = Box::pin(actor.start()).await;
                (actor.into_state(), Some(watcher))
            });
            return self.start_op(path, op);
        }
        let pending = record.pending();
        while let Some(cmd) = pending.cmds.pop_front() {
            let op: BoxFuture<OpOutput> = match cmd {
                // A command whose caller gave up before it started is
                // dropped (a registration's goal is still enforced on
                // events and reconnects).
                ActorCmd::Enforce(reply) if reply.start() => Box::pin(async move {
                    reply.send(Box::pin(actor.enforce(true)).await);
                    (actor.into_state(), None)
                }),
                ActorCmd::SetData { bytes, keep_defaults, reply } if reply.start() => Box::pin(async move {
                    reply.send(Box::pin(actor.set_data(bytes, keep_defaults)).await);
                    (actor.into_state(), None)
                }),
                ActorCmd::Ready(reply) => {
                    let _ = reply.send(());
                    continue;
                }
                ActorCmd::Enforce(_) | ActorCmd::SetData { .. } => continue,
            };
            return self.start_op(path, op);
        }
        let mut state = actor.into_state();
        let mut batch = Batch::default();
        for event in pending.events.drain(..) {
            state.note(&event, &mut batch);
        }
        if pending.held.is_none() {
            record.pending = None;
        }
        if batch.is_empty() || batch.terminated {
            record.state = Some(Box::new(state));
            return;
        }
        let mut actor = Actor::new(self.shared.clone(), self.client.clone(), state);
        let op: BoxFuture<OpOutput> = Box::pin(async move {
            let mut renewed = None;
            if batch.rewatch {
                // Added before the held watcher is dropped (see `held`).
                let watcher = Box::pin(actor.add_watch()).await;
                let ended = watcher.is_none();
                renewed = Some(watcher);
                if ended {
                    return (actor.into_state(), renewed);
                }
            }
            Box::pin(actor.apply(batch)).await;
            (actor.into_state(), renewed)
        });
        self.start_op(path, op);
    }

    fn start_op(&mut self, path: &Arc<str>, op: BoxFuture<OpOutput>) {
        let Some(record) = self.records.get_mut(path) else { return };
        let (op, handle) = futures::future::abortable(op);
        record.op = Some(handle);
        let (path, generation) = (path.clone(), record.generation);
        self.ops.push(Box::pin(async move { (path, generation, op.await) }));
    }
}
