//! The in-memory cache: the latest snapshot of each path, and a `watch`
//! channel for the paths someone subscribed to.
//!
//! Readers clone the latest `Arc<Snapshot>` under a short read lock and
//! never touch the network; a slow subscriber sees the latest snapshot, never
//! a backlog. Only path actors publish. A path nobody subscribes to has no
//! channel (a tokio `watch` channel costs several hundred bytes, and a
//! registry may watch tens of thousands of paths).

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use tokio::sync::watch;

use crate::Snapshot;

type Latest = Option<Arc<Snapshot>>;

#[derive(Default)]
struct Slot {
    latest: Latest,
    subscribers: Option<watch::Sender<Latest>>,
}

/// A value worked out from a directory's snapshot and its children's (the
/// discovery layer's decoded instances), kept with the directory.
pub(crate) type Derived = Arc<dyn Any + Send + Sync>;

/// What is kept for a directory something is derived from.
struct DerivedSlot {
    /// Changes whenever the directory's snapshot or a child's does.
    generation: u64,
    value: Option<Derived>,
}

/// The directories something is derived from: few, so a path that is no
/// such directory costs nothing here.
#[derive(Default)]
struct DerivedTable {
    /// The last generation given out: generations are never reused.
    last: u64,
    dirs: HashMap<Arc<str>, DerivedSlot>,
}

impl DerivedTable {
    /// `path`'s snapshot changed (or went): its own generation and its
    /// parent's move on.
    fn touch(&mut self, path: &str) {
        if self.dirs.is_empty() {
            return;
        }
        for dir in [Some(path), crate::path::parent(path)].into_iter().flatten() {
            if let Some(slot) = self.dirs.get_mut(dir) {
                self.last += 1;
                slot.generation = self.last;
            }
        }
    }
}

#[derive(Default)]
pub(crate) struct Cache {
    /// Keyed by the paths' interned names (see `session::Desired`).
    slots: RwLock<HashMap<Arc<str>, Slot>>,
    /// Values derived from directories. Lock order: `slots`, then this.
    derived: Mutex<DerivedTable>,
    /// Signalled on every publication (the cache file's saver waits on it).
    pub(crate) changed: Arc<tokio::sync::Notify>,
}

impl Cache {
    fn derived_table(&self) -> MutexGuard<'_, DerivedTable> {
        self.derived.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `dir`'s latest snapshot, its generation (which changes whenever
    /// that snapshot or a child's changes, and is never reused) and the
    /// value kept for it ([`keep`](Self::keep)); `None` when `dir` was
    /// never read. Read the children after this: a value worked out from
    /// them is then current while the generation is.
    pub(crate) fn derived(&self, dir: &str) -> Option<(u64, Arc<Snapshot>, Option<Derived>)> {
        let slots = self.slots.read().unwrap_or_else(|e| e.into_inner());
        let (key, slot) = slots.get_key_value(dir)?;
        let snapshot = slot.latest.clone()?;
        let mut table = self.derived_table();
        let table = &mut *table;
        let derived = match table.dirs.get(dir) {
            Some(derived) => derived,
            None => {
                table.last += 1;
                table.dirs.entry(key.clone()).or_insert(DerivedSlot { generation: table.last, value: None })
            }
        };
        Some((derived.generation, snapshot, derived.value.clone()))
    }

    /// Replaces the value kept for `dir` (if [`derived`](Self::derived)
    /// made room for it and `dir` is still cached): `update` gets the
    /// current one and returns the new one.
    pub(crate) fn keep(&self, dir: &str, update: impl FnOnce(Option<&Derived>) -> Option<Derived>) {
        let mut table = self.derived_table();
        if let Some(slot) = table.dirs.get_mut(dir) {
            let value = update(slot.value.as_ref());
            slot.value = value;
        }
    }

    /// The latest snapshots of `dir`'s children `names` (`None` for one
    /// never read), under one lock.
    pub(crate) fn children(&self, dir: &str, names: &[String]) -> Vec<Option<Arc<Snapshot>>> {
        let slots = self.slots.read().unwrap_or_else(|e| e.into_inner());
        let mut path = String::with_capacity(dir.len() + 64);
        names
            .iter()
            .map(|name| {
                path.clear();
                path.push_str(dir);
                if dir != "/" {
                    path.push('/');
                }
                path.push_str(name);
                slots.get(path.as_str()).and_then(|slot| slot.latest.clone())
            })
            .collect()
    }

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
        self.derived_table().touch(path);
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
                self.derived_table().dirs.remove(path);
            }
        }
    }

    /// Forgets `path`; its subscribers see the end of their stream.
    pub(crate) fn remove(&self, path: &str) {
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        if slots.remove(path).is_some() {
            let mut table = self.derived_table();
            table.dirs.remove(path);
            table.touch(path);
        }
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
    fn a_directory_generation_moves_with_it_and_its_children_only() {
        let cache = Cache::default();
        assert!(cache.derived("/a").is_none(), "never read: nothing to derive from");
        cache.publish(&Arc::from("/a"), snap(&["x"]));
        let generation = |cache: &Cache| cache.derived("/a").unwrap().0;
        let first = generation(&cache);
        assert_eq!(generation(&cache), first);
        cache.keep("/a", |_| Some(Arc::new(7u32)));
        let mut x = Snapshot::missing("/a/x");
        x.children = vec!["deeper".into()];
        cache.publish(&Arc::from("/a/x"), x.clone());
        let second = generation(&cache);
        assert!(second > first, "a child's change moves it");
        cache.publish(&Arc::from("/a/x"), x);
        cache.publish(&Arc::from("/a/x/deeper"), snap(&[]));
        cache.publish(&Arc::from("/b"), snap(&[]));
        assert_eq!(generation(&cache), second, "no change, a grandchild, another path: it stays");
        cache.remove("/a/x");
        let third = generation(&cache);
        assert!(third > second, "a child that goes moves it");
        cache.publish(&Arc::from("/a"), snap(&[]));
        assert!(generation(&cache) > third, "the directory's own change moves it");
        let kept = cache.derived("/a").unwrap().2.unwrap();
        assert_eq!(kept.downcast_ref::<u32>(), Some(&7));
        assert_eq!(cache.children("/a", &["x".into(), "y".into()]).iter().filter(|c| c.is_some()).count(), 0);
        cache.remove("/a");
        assert!(cache.derived_table().dirs.is_empty(), "what was kept goes with the directory");
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
