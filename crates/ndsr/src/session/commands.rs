//! How handles reach the hub: commands, their answer channels and tickets.

use std::sync::Arc;

use tokio::sync::oneshot;
use zookeeper_client::Client;

use crate::session::Goal;
use crate::Result;

/// A caller's command for one path, run by the path's record in order.
pub(crate) enum ActorCmd {
    /// Bring the node to its goal now and report.
    Enforce(Reply),
    /// Write persistent data unless the node already holds this value
    /// (`keep_defaults`: the caller gave `pid`/`created` itself).
    SetData { bytes: Vec<u8>, keep_defaults: bool, reply: Reply },
}

/// A request to the hub. The channel is bounded ([`QUEUE`]): a caller
/// waits for room. What the program wants watched reaches the hub through
/// the cache's notes instead (see `Cache::take_notes`), since it comes from
/// calls that cannot wait (`subscribe`, `unwatch`, a dropped subscription).
pub(crate) enum HubCmd {
    /// A new session (from the supervisor): every record starts afresh with
    /// this client, registrations first.
    Session { client: Client, epoch: u64 },
    /// The session is lost (expired, or closed): nothing runs until the
    /// next one. `session`: its id, whose ephemeral nodes are ours to
    /// replace from now on.
    Lost { session: Option<i64> },
    /// The registry closed: the hub ends.
    Close,
    /// Makes `goal` the registration's goal of `path`; answers the goal it
    /// replaced.
    Goal { path: String, goal: Goal, reply: oneshot::Sender<Option<Goal>> },
    /// A registration failed: puts `previous` back if `failed` is still the
    /// goal, and forgets the path if nothing else wants it; answered once
    /// done.
    Restore { path: String, failed: Goal, previous: Option<Goal>, reply: oneshot::Sender<()> },
    /// `unset`: a registration's goal becomes [`Goal::Absent`]; answers
    /// whether `path` was a registration.
    Unset { path: String, reply: oneshot::Sender<bool> },
    /// `set_data`'s first step: answers `false` for a registration's path
    /// (which it must not write), else pins the path watched.
    Watch { path: String, reply: oneshot::Sender<bool> },
    /// Answers the bytes of `path`'s registration, if it is one.
    Registration { path: String, reply: oneshot::Sender<Option<Vec<u8>>> },
    /// A caller's command for `path`.
    Path(String, ActorCmd),
    /// Lends the session's client (and what goes with it) to a caller's
    /// own calls: a direct read or delete, a sequential create, a lock.
    /// Only session `epoch`'s: the reply is dropped if the hub has no
    /// session now, or another.
    Lease { epoch: u64, reply: oneshot::Sender<Lease> },
}

/// The session's client lent by the hub, with what calls made with it
/// need: the epoch it belongs to and the parents this registry made.
#[derive(Clone)]
pub(crate) struct Lease {
    pub(crate) client: Client,
    pub(crate) epoch: u64,
    pub(crate) parents: Arc<crate::session::parents::Parents>,
}

/// The hub's command queue's length: callers beyond it wait their turn.
pub(crate) const QUEUE: usize = 1024;

/// The answer channel of a caller's command, and the ticket that decides
/// whether the command runs: the hub starts it only if the caller has not
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
