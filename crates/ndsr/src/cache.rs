//! The in-memory cache: one `watch` channel of snapshots per path.
//!
//! Readers borrow the latest `Arc<Snapshot>` under a short read lock and
//! never touch the network; a slow subscriber sees the latest snapshot, never
//! a backlog. Only path actors publish.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use crate::Snapshot;

type Slot = watch::Sender<Option<Arc<Snapshot>>>;

#[derive(Default)]
pub(crate) struct Cache {
    slots: RwLock<HashMap<String, Slot>>,
    /// Signalled on every publication (the cache file's saver waits on it).
    pub(crate) changed: Arc<tokio::sync::Notify>,
}

impl Cache {
    /// The latest snapshot of `path`, if one was ever read.
    pub(crate) fn get(&self, path: &str) -> Option<Arc<Snapshot>> {
        let slots = self.slots.read().unwrap_or_else(|e| e.into_inner());
        slots.get(path).and_then(|slot| slot.borrow().clone())
    }

    /// A receiver of `path`'s snapshots (creating its slot if needed).
    pub(crate) fn subscribe(&self, path: &str) -> watch::Receiver<Option<Arc<Snapshot>>> {
        if let Some(slot) = self.slots.read().unwrap_or_else(|e| e.into_inner()).get(path) {
            return slot.subscribe();
        }
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        slots.entry(path.to_string()).or_insert_with(|| watch::channel(None).0).subscribe()
    }

    /// Publishes `snapshot` unless it equals the current one.
    /// Returns whether subscribers were notified.
    pub(crate) fn publish(&self, snapshot: Snapshot) -> bool {
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        let slot = slots.entry(snapshot.path.clone()).or_insert_with(|| watch::channel(None).0);
        let modified = slot.send_if_modified(|current| {
            if current.as_deref() == Some(&snapshot) {
                return false;
            }
            *current = Some(Arc::new(snapshot));
            true
        });
        if modified {
            self.changed.notify_one();
        }
        modified
    }

    /// Every snapshot in the cache.
    pub(crate) fn all(&self) -> Vec<Arc<Snapshot>> {
        let slots = self.slots.read().unwrap_or_else(|e| e.into_inner());
        slots.values().filter_map(|slot| slot.borrow().clone()).collect()
    }

    /// Forgets `path`; its subscribers see the end of their stream.
    pub(crate) fn remove(&self, path: &str) {
        self.slots.write().unwrap_or_else(|e| e.into_inner()).remove(path);
    }
}
