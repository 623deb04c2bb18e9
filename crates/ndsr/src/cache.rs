//! The in-memory cache: the latest snapshot of each path, and a `watch`
//! channel for the paths someone subscribed to.
//!
//! Readers clone the latest `Arc<Snapshot>` under a short read lock and
//! never touch the network; a slow subscriber sees the latest snapshot, never
//! a backlog. Only path actors publish. A path nobody subscribes to has no
//! channel (a tokio `watch` channel costs several hundred bytes, and a
//! registry may watch tens of thousands of paths).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use crate::Snapshot;

type Latest = Option<Arc<Snapshot>>;

#[derive(Default)]
struct Slot {
    latest: Latest,
    subscribers: Option<watch::Sender<Latest>>,
}

#[derive(Default)]
pub(crate) struct Cache {
    /// Keyed by the paths' interned names (see `session::Desired`).
    slots: RwLock<HashMap<Arc<str>, Slot>>,
    /// Signalled on every publication (the cache file's saver waits on it).
    pub(crate) changed: Arc<tokio::sync::Notify>,
}

impl Cache {
    /// The latest snapshot of `path`, if one was ever read.
    pub(crate) fn get(&self, path: &str) -> Option<Arc<Snapshot>> {
        let slots = self.slots.read().unwrap_or_else(|e| e.into_inner());
        slots.get(path).and_then(|slot| slot.latest.clone())
    }

    /// A receiver of `path`'s snapshots, starting with the latest. `key`:
    /// the path's interned name, if it has one.
    pub(crate) fn subscribe(&self, path: &str, key: Option<Arc<str>>) -> watch::Receiver<Latest> {
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        let key = match slots.get_key_value(path) {
            Some((existing, _)) => existing.clone(),
            None => key.unwrap_or_else(|| Arc::from(path)),
        };
        let slot = slots.entry(key).or_default();
        match &slot.subscribers {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = watch::channel(slot.latest.clone());
                slot.subscribers = Some(tx);
                rx
            }
        }
    }

    /// Publishes `snapshot` unless it equals the current one, and returns
    /// the current one (shared with the cache, never a second copy).
    pub(crate) fn publish(&self, path: &Arc<str>, snapshot: Snapshot) -> Arc<Snapshot> {
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        let key = slots.get_key_value(&**path).map_or_else(|| path.clone(), |(key, _)| key.clone());
        let slot = slots.entry(key).or_default();
        if let Some(latest) = slot.latest.as_ref().filter(|latest| ***latest == snapshot) {
            return latest.clone();
        }
        let new = Arc::new(snapshot);
        let latest = Some(new.clone());
        slot.latest = latest.clone();
        if let Some(tx) = &slot.subscribers {
            if tx.receiver_count() == 0 {
                // Everyone unsubscribed: free the channel.
                slot.subscribers = None;
            } else {
                tx.send_replace(latest);
            }
        }
        drop(slots);
        self.changed.notify_one();
        new
    }

    /// Frees `path`'s channel if no receiver is left.
    pub(crate) fn release(&self, path: &str) {
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = slots.get_mut(path) {
            if slot.subscribers.as_ref().is_some_and(|tx| tx.receiver_count() == 0) {
                slot.subscribers = None;
            }
            if slot.latest.is_none() && slot.subscribers.is_none() {
                slots.remove(path);
            }
        }
    }

    /// Forgets `path`; its subscribers see the end of their stream.
    pub(crate) fn remove(&self, path: &str) {
        self.slots.write().unwrap_or_else(|e| e.into_inner()).remove(path);
    }

    /// Ends every subscription (on close); the snapshots stay, for the
    /// cache file's last save.
    pub(crate) fn end_subscriptions(&self) {
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        for slot in slots.values_mut() {
            slot.subscribers = None;
        }
    }

    /// Every snapshot in the cache.
    pub(crate) fn all(&self) -> Vec<Arc<Snapshot>> {
        let slots = self.slots.read().unwrap_or_else(|e| e.into_inner());
        slots.values().filter_map(|slot| slot.latest.clone()).collect()
    }
}

/// Calls [`Cache::release`] for `path` on drop.
pub(crate) struct ReleaseOnDrop<'a> {
    pub(crate) cache: &'a Cache,
    pub(crate) path: &'a str,
}

impl Drop for ReleaseOnDrop<'_> {
    fn drop(&mut self) {
        self.cache.release(self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(children: &[&str]) -> Snapshot {
        let mut s = Snapshot::missing("/a");
        s.children = children.iter().map(|c| c.to_string()).collect();
        s
    }

    #[test]
    fn publishes_only_changes_and_subscribers_start_from_the_latest() {
        let cache = Cache::default();
        let first = cache.publish(&Arc::from("/a"), snap(&["x"]));
        assert!(
            Arc::ptr_eq(&first, &cache.publish(&Arc::from("/a"), snap(&["x"]))),
            "identical snapshots are not published"
        );
        let mut rx = cache.subscribe("/a", None);
        assert_eq!(rx.borrow_and_update().as_ref().unwrap().children, ["x"]);
        assert!(!Arc::ptr_eq(&first, &cache.publish(&Arc::from("/a"), snap(&["x", "y"]))));
        assert!(rx.has_changed().unwrap());
        assert_eq!(cache.get("/a").unwrap().children, ["x", "y"]);
        cache.remove("/a");
        assert!(rx.has_changed().is_err(), "removal ends subscriptions");
    }

    #[test]
    fn a_channel_without_receivers_is_freed() {
        let cache = Cache::default();
        drop(cache.subscribe("/a", None));
        cache.publish(&Arc::from("/a"), snap(&[]));
        assert!(cache.slots.read().unwrap()["/a"].subscribers.is_none());
        let rx = cache.subscribe("/a", None);
        assert!(rx.borrow().is_some(), "a new subscriber still starts from the latest");
    }
}
