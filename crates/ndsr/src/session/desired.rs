//! The desired state: what the program asked for on each path. It outlives
//! sessions: each new epoch's hub is handed every desired path.
//!
//! A path's name is interned here: the table's key is the one `Arc<str>`
//! that the hub's record and the cache's slot share.

use std::collections::HashMap;
use std::sync::Arc;

use crate::session::{stop_actor, Shared};

/// What the program asked for on one path.
#[derive(Clone, Debug, Default)]
pub(crate) struct Desire {
    /// Keep the path in the cache, watched, until `unwatch` (asked for by
    /// `get`, `set_data`).
    pub(crate) watch: bool,
    /// A token that every live subscription (and callback) of this desire
    /// holds a clone of: the path stays watched while there is one. A token
    /// rather than a count, so that a subscription from before an
    /// `unwatch` never counts against a later desire of the same path.
    pub(crate) subscription: Option<Arc<()>>,
    /// A registration's goal for the node.
    pub(crate) goal: Option<Goal>,
    /// A registration's write and delete counts; boxed, since most paths
    /// never need them.
    counters: Option<Box<Counters>>,
}

/// A registration's counts.
#[derive(Clone, Debug, Default)]
pub(crate) struct Counters {
    /// Writes of this path in a row whose connection dropped while they
    /// were in flight (see `Shared::write_call`); reset by any success.
    pub(crate) drops: u32,
    /// Deletions of other clients' nodes kept absent (see `Goal::Absent`):
    /// how many in a row, and when the last was.
    pub(crate) foreign_deletes: u32,
    pub(crate) last_foreign_delete: Option<tokio::time::Instant>,
    /// The registration was given up after this many dropped writes: the
    /// caller whose `set_node` is still waiting learns it.
    pub(crate) given_up: Option<u32>,
}

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

impl Desire {
    /// Does anything still want this path?
    pub(crate) fn is_empty(&self) -> bool {
        let subscribed = matches!(&self.subscription, Some(token) if Arc::strong_count(token) > 1);
        !self.watch && !subscribed && self.goal.is_none()
    }

    /// Writes in a row that lost the connection.
    pub(crate) fn drops(&self) -> u32 {
        self.counters.as_ref().map_or(0, |c| c.drops)
    }

    /// The counts, made on first use.
    pub(crate) fn counters(&mut self) -> &mut Counters {
        self.counters.get_or_insert_with(Default::default)
    }

    /// Forgets the dropped writes (a success, or a new goal).
    pub(crate) fn reset_drops(&mut self) {
        if let Some(counters) = &mut self.counters {
            counters.drops = 0;
            counters.given_up = None;
        }
    }

    /// Gives the registration up after `drops` dropped writes.
    pub(crate) fn give_up(&mut self, drops: u32) {
        self.goal = None;
        let counters = self.counters();
        counters.drops = 0;
        counters.given_up = Some(drops);
    }

    /// After how many dropped writes the registration was given up, if it was.
    pub(crate) fn given_up(&self) -> Option<u32> {
        self.counters.as_ref().and_then(|c| c.given_up)
    }
}

/// Every path's desire, keyed by its interned name.
#[derive(Default)]
pub(crate) struct Desired(HashMap<Arc<str>, Desire>);

impl Desired {
    pub(crate) fn get(&self, path: &str) -> Option<&Desire> {
        self.0.get(path)
    }

    pub(crate) fn get_mut(&mut self, path: &str) -> Option<&mut Desire> {
        self.0.get_mut(path)
    }

    /// The path's desire, made empty if there is none.
    pub(crate) fn want(&mut self, path: &str) -> &mut Desire {
        let key = self.key(path).unwrap_or_else(|| Arc::from(path));
        self.0.entry(key).or_default()
    }

    /// The interned name of a desired path.
    pub(crate) fn key(&self, path: &str) -> Option<Arc<str>> {
        self.0.get_key_value(path).map(|(key, _)| key.clone())
    }

    pub(crate) fn remove(&mut self, path: &str) -> Option<Desire> {
        self.0.remove(path)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &Desire)> {
        self.0.iter()
    }
}

/// Forgets `path` if nothing wants it any more: its desire, actor and cache
/// entry. Called under the desired-state lock, so that a `get` or
/// `subscribe` racing with it either keeps the path or starts afresh.
pub(crate) fn forget_if_unwanted(shared: &Shared, desired: &mut Desired, path: &str) {
    if desired.get(path).is_some_and(Desire::is_empty) {
        desired.remove(path);
        stop_actor(shared, path);
        shared.cache.remove(path);
    }
}

/// A subscription of `path` holding `token` ended: unwatch the path if
/// nothing else wants it, else free its channel if it has no receiver left.
pub(crate) fn release_subscriber(shared: &Shared, path: &str, token: Arc<()>) {
    let mut desired = shared.desired();
    let ours = desired
        .get(path)
        .and_then(|desire| desire.subscription.as_ref())
        .is_some_and(|current| Arc::ptr_eq(current, &token));
    // Dropped under the lock, so that of two subscriptions ending at once,
    // the second sees the first's token gone.
    drop(token);
    if ours {
        forget_if_unwanted(shared, &mut desired, path);
    }
    drop(desired);
    shared.cache.release(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_interned_once() {
        let mut desired = Desired::default();
        desired.want("/a").watch = true;
        let key = desired.key("/a").unwrap();
        desired.want("/a").goal = Some(Goal::Absent);
        assert!(Arc::ptr_eq(&key, &desired.key("/a").unwrap()), "the same name, not a new one");
    }

    #[test]
    fn a_desire_is_small() {
        // It exists once per wanted path.
        let size = std::mem::size_of::<Desire>();
        assert!(size <= 48, "a Desire is {size} bytes");
    }

    #[test]
    fn counters_are_made_on_first_use() {
        let mut desire = Desire::default();
        assert_eq!(desire.drops(), 0);
        desire.reset_drops();
        assert!(desire.counters.is_none());
        desire.counters().drops = 2;
        assert_eq!(desire.drops(), 2);
        desire.reset_drops();
        assert_eq!(desire.drops(), 0);
    }
}
