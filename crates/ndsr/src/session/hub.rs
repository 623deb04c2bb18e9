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
//! kilobyte) per path.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;

use futures::future::{AbortHandle, Abortable, Aborted};
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
type Armed = BoxFuture<(String, Generation, Result<(WatchedEvent, PersistentWatcher), Aborted>)>;

/// What an operation hands back: the path's state and, when it (re)added
/// the watch, the new watcher (`None` inside: the session ended).
type OpOutput = (PathState, Option<Option<PersistentWatcher>>);

/// An operation in flight.
type Op = BoxFuture<(String, Generation, Result<OpOutput, Aborted>)>;

struct Record {
    generation: Generation,
    /// `None` while an operation runs.
    state: Option<PathState>,
    /// Events that arrived while busy, in order.
    events: Vec<WatchedEvent>,
    /// Commands that arrived while busy (or before the start finished).
    cmds: VecDeque<ActorCmd>,
    /// The watcher while it waits for an event.
    armed: Option<AbortHandle>,
    /// A watcher held back while its replacement is being added (never
    /// dropped first: dropping a path's last watcher removes the watch on
    /// the server).
    held: Option<PersistentWatcher>,
    op: Option<AbortHandle>,
    /// The session ended for this path (a terminal event): nothing more.
    dead: bool,
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
            }
        }
    }
}

struct Hub {
    shared: Arc<Shared>,
    client: Client,
    records: HashMap<String, Record>,
    next_generation: Generation,
    armed: FuturesUnordered<Armed>,
    ops: FuturesUnordered<Op>,
}

impl Hub {
    fn command(&mut self, cmd: HubCmd) {
        match cmd {
            HubCmd::Watch(path) => self.ensure(&path),
            HubCmd::Stop(path) => {
                if let Some(record) = self.records.remove(&path) {
                    for handle in record.armed.iter().chain(record.op.iter()) {
                        handle.abort();
                    }
                }
            }
            HubCmd::Path(path, cmd) => {
                self.ensure(&path);
                if let Some(record) = self.records.get_mut(&path) {
                    record.cmds.push_back(cmd);
                }
                self.next_step(&path);
            }
        }
    }

    /// Makes a record for `path` and starts it, unless there is one.
    fn ensure(&mut self, path: &str) {
        if self.records.contains_key(path) {
            return;
        }
        self.next_generation += 1;
        let generation = self.next_generation;
        let mut actor =
            Actor::new(self.shared.clone(), self.client.clone(), PathState::new(path.to_string()));
        let (op, handle) = futures::future::abortable(async move {
            let watcher = Box::pin(actor.start()).await;
            (actor.into_state(), Some(watcher))
        });
        self.push_op(path, generation, op);
        self.records.insert(
            path.to_string(),
            Record {
                generation,
                state: None,
                events: Vec::new(),
                cmds: VecDeque::new(),
                armed: None,
                held: None,
                op: Some(handle),
                dead: false,
            },
        );
    }

    fn push_op(
        &mut self,
        path: &str,
        generation: Generation,
        op: Abortable<impl Future<Output = OpOutput> + Send + 'static>,
    ) {
        let path = path.to_string();
        self.ops.push(Box::pin(async move { (path, generation, op.await) }));
    }

    /// Waits for the next event of `watcher`.
    fn arm(&mut self, path: &str, watcher: PersistentWatcher) {
        let Some(record) = self.records.get_mut(path) else { return };
        let generation = record.generation;
        let (waiting, handle) = futures::future::abortable(async move {
            let mut watcher = watcher;
            let event = watcher.changed().await;
            (event, watcher)
        });
        record.armed = Some(handle);
        let path = path.to_string();
        self.armed.push(Box::pin(async move { (path, generation, waiting.await) }));
    }

    fn event(
        &mut self,
        path: String,
        generation: Generation,
        event: WatchedEvent,
        watcher: PersistentWatcher,
    ) {
        let Some(record) = self.records.get_mut(&path).filter(|r| r.generation == generation) else {
            return;
        };
        record.armed = None;
        let reconnected = event.event_type == zookeeper_client::EventType::Session
            && matches!(
                event.session_state,
                zookeeper_client::SessionState::SyncConnected
                    | zookeeper_client::SessionState::ConnectedReadOnly
            );
        let terminated =
            event.event_type == zookeeper_client::EventType::Session && event.session_state.is_terminated();
        record.events.push(event);
        if terminated {
            // pitfall 11: never await the watcher after a terminal event.
            record.dead = true;
        } else if reconnected {
            // Re-added by the next operation; kept until then.
            record.held = Some(watcher);
        } else {
            self.arm(&path, watcher);
        }
        self.next_step(&path);
    }

    fn finished(
        &mut self,
        path: String,
        generation: Generation,
        state: PathState,
        watcher: Option<Option<PersistentWatcher>>,
    ) {
        let Some(record) = self.records.get_mut(&path).filter(|r| r.generation == generation) else {
            return;
        };
        record.op = None;
        record.state = Some(state);
        match watcher {
            Some(Some(watcher)) => {
                // The new watcher is there: the held one may go now.
                record.held = None;
                self.arm(&path, watcher);
            }
            Some(None) => {
                record.held = None;
                record.dead = true;
            }
            None => {}
        }
        self.next_step(&path);
    }

    /// Starts the path's next operation if it is idle and has work:
    /// commands first (in order), then the events so far, as one batch.
    fn next_step(&mut self, path: &str) {
        let Some(record) = self.records.get_mut(path) else { return };
        if record.dead {
            // The session is gone: answer nothing; callers follow the
            // path to the next session.
            record.cmds.clear();
            record.events.clear();
            return;
        }
        let Some(mut state) = record.state.take() else { return };
        while let Some(cmd) = record.cmds.pop_front() {
            let mut actor = Actor::new(self.shared.clone(), self.client.clone(), state);
            let op = match cmd {
                ActorCmd::Ready(reply) => {
                    let _ = reply.send(());
                    state = actor.into_state();
                    continue;
                }
                // A command whose caller gave up before it started is
                // dropped (a registration's goal is still enforced on
                // events and reconnects).
                ActorCmd::Enforce(reply) if reply.start() => {
                    futures::future::abortable(Box::pin(async move {
                        reply.send(Box::pin(actor.enforce(true)).await);
                        (actor.into_state(), None)
                    }) as BoxFuture<_>)
                }
                ActorCmd::SetData { bytes, keep_defaults, reply } if reply.start() => {
                    futures::future::abortable(Box::pin(async move {
                        reply.send(Box::pin(actor.set_data(bytes, keep_defaults)).await);
                        (actor.into_state(), None)
                    }) as BoxFuture<_>)
                }
                ActorCmd::Enforce(_) | ActorCmd::SetData { .. } => {
                    state = actor.into_state();
                    continue;
                }
            };
            return self.start_op(path, op);
        }
        let mut batch = Batch::default();
        for event in record.events.drain(..) {
            state.note(&event, &mut batch);
        }
        if batch.is_empty() || batch.terminated {
            record.state = Some(state);
            return;
        }
        let mut actor = Actor::new(self.shared.clone(), self.client.clone(), state);
        let op = futures::future::abortable(Box::pin(async move {
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
        }) as BoxFuture<_>);
        self.start_op(path, op);
    }

    fn start_op(&mut self, path: &str, (op, handle): (Abortable<BoxFuture<OpOutput>>, AbortHandle)) {
        let Some(record) = self.records.get_mut(path) else { return };
        record.op = Some(handle);
        let generation = record.generation;
        self.push_op(path, generation, op);
    }
}
