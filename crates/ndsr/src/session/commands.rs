//! How handles reach the hub: commands, their answer channels and tickets,
//! and the sender of one path's commands.

use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::session::{hub, Shared, State};
use crate::Result;

/// A request to a path actor.
pub(crate) enum ActorCmd {
    /// Bring the node to its goal now and report.
    Enforce(Reply),
    /// Write persistent data unless the node already holds this value
    /// (`keep_defaults`: the caller gave `pid`/`created` itself).
    SetData { bytes: Vec<u8>, keep_defaults: bool, reply: Reply },
    /// Answered once the actor's first read (and enforcement) is done.
    Ready(oneshot::Sender<()>),
}

/// The answer channel of a caller's command, and the ticket that decides
/// whether the command runs: the actor starts it only if the caller has not
/// withdrawn it (timed out, or its future was dropped), and a caller that
/// gives up learns whether it had started. So a write whose caller gave up
/// before it started is never performed, and one that had started is
/// reported as of unknown outcome.
pub(crate) struct Reply {
    tx: oneshot::Sender<Result<()>>,
    ticket: Ticket,
}

impl Reply {
    pub(crate) fn new() -> (Reply, oneshot::Receiver<Result<()>>, Ticket) {
        let (tx, rx) = oneshot::channel();
        let ticket = Ticket::default();
        (Reply { tx, ticket: ticket.clone() }, rx, ticket)
    }

    /// Claims the command for running; `false`: the caller withdrew it.
    pub(crate) fn start(&self) -> bool {
        !self.tx.is_closed() && self.ticket.move_from_queued(Ticket::STARTED)
    }

    pub(crate) fn send(self, result: Result<()>) {
        let _ = self.tx.send(result);
    }
}

/// Whether a command is queued, started or withdrawn.
#[derive(Clone, Default)]
pub(crate) struct Ticket(Arc<std::sync::atomic::AtomicU8>);

impl Ticket {
    const STARTED: u8 = 1;
    const WITHDRAWN: u8 = 2;

    fn move_from_queued(&self, to: u8) -> bool {
        use std::sync::atomic::Ordering::AcqRel;
        self.0.compare_exchange(0, to, AcqRel, std::sync::atomic::Ordering::Acquire).is_ok()
    }

    /// Withdraws the command unless it has started; `true`: it never will.
    pub(crate) fn withdraw(&self) -> bool {
        self.move_from_queued(Self::WITHDRAWN)
            || self.0.load(std::sync::atomic::Ordering::Acquire) == Self::WITHDRAWN
    }
}

/// Withdraws a command when its caller's future is dropped (cancelled)
/// before the answer came.
pub(crate) struct WithdrawOnDrop(pub(crate) Ticket);

impl Drop for WithdrawOnDrop {
    fn drop(&mut self) {
        self.0.withdraw();
    }
}

/// The hub of one epoch (see `hub.rs`).
pub(crate) struct HubHandle {
    pub(crate) epoch: u64,
    /// A `futures` channel: it allocates per message, not per block.
    pub(crate) tx: futures::channel::mpsc::UnboundedSender<hub::HubCmd>,
    pub(crate) task: JoinHandle<()>,
}

/// Sends a path's commands to the hub of the epoch it was made in.
pub(crate) struct PathSender {
    tx: futures::channel::mpsc::UnboundedSender<hub::HubCmd>,
    path: Arc<str>,
}

impl PathSender {
    /// Sends `cmd`; an error means that epoch's hub is gone.
    pub(crate) fn send(&self, cmd: ActorCmd) -> std::result::Result<(), ()> {
        self.tx.unbounded_send(hub::HubCmd::Path(self.path.clone(), cmd)).map_err(drop)
    }
}

/// A sender of `path`'s commands in the current epoch, starting the work on
/// the path (and the epoch's hub) if needed. `None` while there is no live
/// session.
pub(crate) fn ensure_actor(shared: &Arc<Shared>, path: &str) -> Option<PathSender> {
    let sender = path_sender(shared, path)?;
    sender.tx.unbounded_send(hub::HubCmd::Watch(sender.path.clone())).ok()?;
    Some(sender)
}

/// A sender of `path`'s commands in the current epoch (the epoch's hub
/// started if needed); the path starts with its first command. `None`
/// while there is no live session.
pub(crate) fn path_sender(shared: &Arc<Shared>, path: &str) -> Option<PathSender> {
    let view = shared.session.borrow().clone();
    let client = view.client.filter(|_| view.state != State::Closed)?;
    // The desired path's interned name (taken before the hub's lock: the
    // desired state is always locked first).
    let path: Arc<str> = shared.desired().key(path).unwrap_or_else(|| Arc::from(path));
    let mut hub = shared.hub();
    let current = hub.as_ref().is_some_and(|h| h.epoch == view.epoch && !h.tx.is_closed());
    if !current {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let task = shared.tasks.spawn(hub::run(shared.clone(), client, rx));
        // An older epoch's hub (the supervisor normally stops it first) is
        // aborted; the task tracker still waits for it on close.
        if let Some(old) = hub.replace(HubHandle { epoch: view.epoch, tx, task }) {
            old.task.abort();
        }
    }
    let tx = hub.as_ref()?.tx.clone();
    Some(PathSender { tx, path })
}

/// Stops the work on `path` (after `unwatch`/`unset` leave nothing to do).
pub(crate) fn stop_actor(shared: &Shared, path: &str) {
    if let Some(hub) = shared.hub().as_ref() {
        let _ = hub.tx.unbounded_send(hub::HubCmd::Stop(path.to_string()));
    }
}
