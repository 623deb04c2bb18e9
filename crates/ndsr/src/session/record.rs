//! A path's record in the hub: what is known of the path between
//! operations, and what arrived while one ran.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::future::AbortHandle;
use zookeeper_client::WatchedEvent;

use crate::session::actor::PathState;
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
    pub(crate) op: Option<AbortHandle>,
    /// Not started yet: the first operation reads (or registers).
    pub(crate) unstarted: bool,
    /// Waiting for room among the operations in flight.
    pub(crate) queued: bool,
    /// An operation runs.
    pub(crate) busy: bool,
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

    pub(crate) fn has_work(&self) -> bool {
        self.unstarted
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
        assert!(size <= 64, "a Record is {size} bytes");
    }
}
