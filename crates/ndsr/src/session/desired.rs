//! What the program asked of a path, as the hub's record of it keeps it:
//! a registration's goal and its counts. (Whether a path is watched at
//! all is the cache's: its subscribers and pins.)

use std::sync::atomic::{AtomicU32, Ordering};

/// The state a registration keeps a node in.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Goal {
    /// An ephemeral node with exactly these bytes, owned by our session.
    Ephemeral(Vec<u8>),
    /// `unset` of a registration: no node at the path. Our own node (of
    /// this or an earlier session) is deleted, and so is a persistent node
    /// that reappears (rate-limited, logged at WARN); an ephemeral node of
    /// another live session is never deleted: it is someone else's
    /// registration. Ends with `set_node` or `unwatch`.
    Absent,
}

impl Goal {
    /// The cache pins that keep a path with this goal (see `cache.rs`).
    pub(crate) fn pins(goal: Option<&Goal>) -> u8 {
        match goal {
            Some(Goal::Ephemeral(_)) => crate::cache::REGISTERED,
            Some(Goal::Absent) => crate::cache::KEPT_ABSENT,
            None => 0,
        }
    }
}

/// A registration's counts, made on first use (most paths never need them).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Writes of this path in a row whose connection dropped while they
    /// were in flight (see `Shared::write_call`); reset by any success.
    /// Atomic only so that an operation can lend it to its calls.
    pub(crate) drops: AtomicU32,
    /// Deletions of other clients' nodes kept absent (see `Goal::Absent`).
    pub(crate) foreign: ForeignDeletes,
}

/// Deletions of other clients' nodes: how many in a row, and when the last
/// was (see `reconcile::pace_foreign_delete`).
#[derive(Debug, Default)]
pub(crate) struct ForeignDeletes {
    pub(crate) count: u32,
    pub(crate) last: Option<tokio::time::Instant>,
}

impl Counters {
    /// Writes in a row that lost the connection.
    pub(crate) fn drops(&self) -> u32 {
        self.drops.load(Ordering::Relaxed)
    }

    /// Nothing worth keeping: the record need not hold them.
    pub(crate) fn is_empty(&self) -> bool {
        self.drops() == 0 && self.foreign.count == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_tell_when_they_are_empty() {
        let mut counters = Counters::default();
        assert!(counters.is_empty());
        counters.drops.store(2, Ordering::Relaxed);
        assert!(!counters.is_empty());
        counters.drops.store(0, Ordering::Relaxed);
        counters.foreign.count = 1;
        assert!(!counters.is_empty());
    }

    #[test]
    fn goals_pin_their_paths() {
        use crate::cache::{KEPT_ABSENT, REGISTERED};
        assert_eq!(Goal::pins(Some(&Goal::Ephemeral(vec![]))), REGISTERED);
        assert_eq!(Goal::pins(Some(&Goal::Absent)), KEPT_ABSENT);
        assert_eq!(Goal::pins(None), 0);
    }
}
