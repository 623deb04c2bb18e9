//! A path's record in the hub: what the program asked of the path (a
//! registration's goal), what is known of it between operations, and what
//! arrived while one ran. Records outlive sessions: each new session's
//! client is handed to the same records.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::future::AbortHandle;
use zookeeper_client::WatchedEvent;

use crate::session::actor::PathState;
use crate::session::desired::{Counters, Goal};
use crate::session::watch_table::Generation;
use crate::session::ActorCmd;

/// One path's record: small while the path is at rest (what arrives while
/// it is busy has a box of its own).
pub(crate) struct Record {
    pub(crate) generation: Generation,
    /// The root whose watch covers the path (`None` until it starts).
    pub(crate) cover: Option<Arc<str>>,
    /// Taken (left empty) while an operation runs.
    pub(crate) state: PathState,
    pub(crate) pending: Option<Box<Pending>>,
    /// A registration's goal for the node (`None`: the path is only
    /// watched).
    pub(crate) goal: Option<Goal>,
    /// A registration's counts; lent to (taken while) an operation runs.
    pub(crate) counters: Option<Box<Counters>>,
    /// The counts lent to the running operation are stale (a new goal came
    /// meanwhile): what it hands back is dropped.
    pub(crate) counters_stale: bool,
    /// The registration was given up after this many dropped writes: the
    /// caller whose `set_node` is still waiting learns it.
    pub(crate) given_up: Option<u32>,
    /// Idle, waiting for room, or running an operation.
    activity: Activity,
}

/// What a path's record is doing. Each state also says whether the next
/// operation (re)starts the path, reading (or registering) it afresh: so
/// when the record is made, and when the watch that covered it is gone,
/// even while an operation runs. (Kept inside the enum, so that the flag
/// costs no room: a record exists for every wanted path.)
enum Activity {
    /// No operation runs, none waits.
    Idle { unstarted: bool },
    /// Waiting for room among the operations in flight (in the hub's
    /// waiting queue).
    Queued { unstarted: bool },
    /// An operation runs; aborted when the path is no longer wanted.
    Busy { op: AbortHandle, unstarted: bool },
}

/// What arrived for a path while it was busy.
#[derive(Default)]
pub(crate) struct Pending {
    /// Events, in order.
    pub(crate) events: Vec<WatchedEvent>,
    /// Its watch was added again after a reconnect: re-read.
    pub(crate) reconnected: bool,
    /// Commands, in order.
    pub(crate) cmds: VecDeque<ActorCmd>,
}

impl Record {
    pub(crate) fn pending(&mut self) -> &mut Pending {
        self.pending.get_or_insert_with(Default::default)
    }

    /// A new record: idle, and its first operation starts it.
    pub(crate) fn new(generation: Generation) -> Record {
        Record {
            generation,
            cover: None,
            state: PathState::default(),
            pending: None,
            goal: None,
            counters: None,
            counters_stale: false,
            given_up: None,
            activity: Activity::Idle { unstarted: true },
        }
    }

    /// Running an operation (which holds what the record lent it)?
    pub(crate) fn is_busy(&self) -> bool {
        matches!(self.activity, Activity::Busy { .. })
    }

    /// Neither running an operation nor waiting for room.
    pub(crate) fn is_idle(&self) -> bool {
        matches!(self.activity, Activity::Idle { .. })
    }

    /// Does its next operation (re)start it?
    pub(crate) fn unstarted(&self) -> bool {
        match self.activity {
            Activity::Idle { unstarted }
            | Activity::Queued { unstarted }
            | Activity::Busy { unstarted, .. } => unstarted,
        }
    }

    /// Says whether its next operation (re)starts it; returns what it was.
    pub(crate) fn set_unstarted(&mut self, value: bool) -> bool {
        match &mut self.activity {
            Activity::Idle { unstarted }
            | Activity::Queued { unstarted }
            | Activity::Busy { unstarted, .. } => std::mem::replace(unstarted, value),
        }
    }

    /// The record as a new session finds it: nothing runs, it starts
    /// afresh under its new cover; what callers asked for is kept.
    pub(crate) fn restart(&mut self, generation: Generation) {
        self.abort();
        self.generation = generation;
        self.cover = None;
        if let Some(pending) = &mut self.pending {
            pending.events.clear();
            pending.reconnected = false;
        }
        self.activity = Activity::Idle { unstarted: true };
        // The operation the counts were lent to is gone with them.
        self.counters_stale = false;
    }

    /// No operation runs or waits any more.
    pub(crate) fn become_idle(&mut self) {
        self.activity = Activity::Idle { unstarted: self.unstarted() };
    }

    /// Waits for room among the operations in flight.
    pub(crate) fn become_queued(&mut self) {
        self.activity = Activity::Queued { unstarted: self.unstarted() };
    }

    /// Runs the operation that `op` aborts.
    pub(crate) fn become_busy(&mut self, op: AbortHandle) {
        self.activity = Activity::Busy { op, unstarted: self.unstarted() };
    }

    /// Aborts the operation that runs, if one does.
    pub(crate) fn abort(&self) {
        if let Activity::Busy { op, .. } = &self.activity {
            op.abort();
        }
    }

    /// Does a caller's command wait in it?
    pub(crate) fn has_commands(&self) -> bool {
        self.pending.as_ref().is_some_and(|p| !p.cmds.is_empty())
    }

    pub(crate) fn has_work(&self) -> bool {
        self.unstarted()
            || self
                .pending
                .as_ref()
                .is_some_and(|p| p.reconnected || !p.events.is_empty() || !p.cmds.is_empty())
    }
}

#[cfg(test)]
mod tests {
    /// A record exists once per wanted path: keep it small.
    #[test]
    fn a_record_is_small() {
        let size = std::mem::size_of::<super::Record>();
        assert!(size <= 112, "a Record is {size} bytes");
    }
}
