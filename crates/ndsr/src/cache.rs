//! The in-memory cache: the latest snapshot of each path, and a `watch`
//! channel for the paths someone subscribed to.
//!
//! Readers clone the latest `Arc<Snapshot>` under a short read lock and
//! never touch the network; a slow subscriber sees the latest snapshot, never
//! a backlog. Only the hub publishes. A path nobody subscribes to has no
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
    /// What keeps the path wanted besides its subscribers ([`WATCHED`],
    /// [`REGISTERED`], [`KEPT_ABSENT`]).
    pins: u8,
}

impl Slot {
    fn receivers(&self) -> usize {
        self.subscribers.as_ref().map_or(0, |tx| tx.receiver_count())
    }

    /// Does anything still want the path?
    fn wanted(&self) -> bool {
        self.pins != 0 || self.receivers() > 0
    }
}

/// A pin of a path asked for by `get` or `set_data`: kept until `unwatch`.
pub(crate) const WATCHED: u8 = 1;
/// A pin of a registration's path (set by the hub while it has the goal).
pub(crate) const REGISTERED: u8 = 2;
/// A pin of an unset registration's path, kept absent (set by the hub).
pub(crate) const KEPT_ABSENT: u8 = 4;

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

/// The cache holds what the program wants of each path (its subscribers
/// and pins); whoever keeps the paths current (the hub) hears of every
/// change of that through [`take_notes`](Cache::take_notes): a
/// subscription or a caller tells the cache, never the session.
#[derive(Default)]
pub(crate) struct Cache {
    /// Keyed by the paths' interned names (the hub's records share them).
    slots: RwLock<HashMap<Arc<str>, Slot>>,
    /// Paths whose wants changed since the hub last looked (`true`:
    /// unwatched), one entry per path however often it changed: bounded by
    /// the paths, never by the calls.
    notes: Mutex<HashMap<Arc<str>, bool>>,
    /// Signalled when a note is added.
    noted: tokio::sync::Notify,
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

    /// A receiver of `path`'s snapshots, starting with the latest, and
    /// the path's interned name. The path is wanted while the receiver
    /// lives; the hub hears of it.
    pub(crate) fn subscribe(&self, path: &str) -> (watch::Receiver<Latest>, Arc<str>) {
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        let (key, slot) = Self::slot(&mut slots, path);
        let rx = match &slot.subscribers {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = watch::channel(slot.latest.clone());
                slot.subscribers = Some(tx);
                rx
            }
        };
        drop(slots);
        self.note(key.clone(), false);
        (rx, key)
    }

    /// `path`'s slot (made if there is none) and its interned name.
    fn slot<'a>(slots: &'a mut HashMap<Arc<str>, Slot>, path: &str) -> (Arc<str>, &'a mut Slot) {
        let key = match slots.get_key_value(path) {
            Some((existing, _)) => existing.clone(),
            None => Arc::from(path),
        };
        let slot = slots.entry(key.clone()).or_default();
        (key, slot)
    }

    /// Forgets `path`'s slot (its subscribers see the end of their stream)
    /// and what was derived from it; its parent's derived value moves on.
    fn forget(&self, slots: &mut HashMap<Arc<str>, Slot>, path: &str) {
        slots.remove(path);
        let mut table = self.derived_table();
        table.dirs.remove(path);
        table.touch(path);
    }

    /// Pins `path` with `pin` (see [`WATCHED`]); returns its interned name.
    /// The hub hears of it.
    pub(crate) fn pin(&self, path: &str, pin: u8) -> Arc<str> {
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        let (key, slot) = Self::slot(&mut slots, path);
        slot.pins |= pin;
        drop(slots);
        self.note(key.clone(), false);
        key
    }

    /// Sets the registration pins of `path` ([`REGISTERED`],
    /// [`KEPT_ABSENT`]) to `pins`, the other pins kept (the hub, as a
    /// path's goal changes).
    pub(crate) fn set_goal_pins(&self, path: &Arc<str>, pins: u8) {
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        let slot = match slots.get_mut(&**path) {
            Some(slot) => slot,
            None if pins == 0 => return,
            None => slots.entry(path.clone()).or_default(),
        };
        slot.pins = (slot.pins & WATCHED) | (pins & (REGISTERED | KEPT_ABSENT));
    }

    /// `unwatch`: drops the [`WATCHED`] and [`KEPT_ABSENT`] pins and,
    /// unless the path is registered, forgets it (its subscriptions end).
    /// The hub hears of it.
    pub(crate) fn unwatch(&self, path: &str) {
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        let key = match slots.get_key_value(path) {
            Some((key, slot)) if slot.pins & REGISTERED != 0 => {
                let key = key.clone();
                if let Some(slot) = slots.get_mut(path) {
                    slot.pins &= !(WATCHED | KEPT_ABSENT);
                }
                key
            }
            Some((key, _)) => {
                let key = key.clone();
                self.forget(&mut slots, path);
                key
            }
            None => Arc::from(path),
        };
        drop(slots);
        self.note(key, true);
    }

    /// A subscription of `path` ended (its receiver is gone): frees the
    /// channel if no receiver is left, and forgets the path if nothing
    /// else wants it. The hub hears of it.
    pub(crate) fn release_subscriber(&self, path: &Arc<str>) {
        self.release(path);
        self.note(path.clone(), false);
    }

    /// Does anything (a subscriber, a pin) want `path`?
    #[cfg(test)]
    pub(crate) fn wanted(&self, path: &str) -> bool {
        let slots = self.slots.read().unwrap_or_else(|e| e.into_inner());
        slots.get(path).is_some_and(Slot::wanted)
    }

    /// Forgets `path` unless something wants it; `true`: it is gone.
    pub(crate) fn remove_if_unwanted(&self, path: &str) -> bool {
        // The hub asks after every operation of a path with no goal; most
        // are wanted, and the read lock does not stop the readers.
        if self.slots.read().unwrap_or_else(|e| e.into_inner()).get(path).is_some_and(Slot::wanted) {
            return false;
        }
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        match slots.get(path) {
            Some(slot) if slot.wanted() => false,
            Some(_) => {
                self.forget(&mut slots, path);
                true
            }
            None => true,
        }
    }

    /// The interned name of a cached path.
    pub(crate) fn key(&self, path: &str) -> Option<Arc<str>> {
        let slots = self.slots.read().unwrap_or_else(|e| e.into_inner());
        slots.get_key_value(path).map(|(key, _)| key.clone())
    }

    /// Notes that what is wanted of `path` changed (`unwatched`: by
    /// `unwatch`), for the hub.
    pub(crate) fn note(&self, path: Arc<str>, unwatched: bool) {
        *self.notes.lock().unwrap_or_else(|e| e.into_inner()).entry(path).or_default() |= unwatched;
        self.noted.notify_one();
    }

    /// The paths noted since the last call.
    pub(crate) fn take_notes(&self) -> HashMap<Arc<str>, bool> {
        std::mem::take(&mut *self.notes.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Waits until a note is added (or was, since the last wait).
    pub(crate) async fn noted(&self) {
        self.noted.notified().await
    }

    /// Publishes `snapshot` unless it equals the current one, and returns
    /// the current one (shared with the cache, never a second copy). A
    /// path nothing wants any more (no slot) is not kept: its record is
    /// about to be forgotten.
    pub(crate) fn publish(&self, path: &Arc<str>, snapshot: Snapshot) -> Arc<Snapshot> {
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        let Some(slot) = slots.get_mut(&**path) else { return Arc::new(snapshot) };
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
            if slot.subscribers.is_none() && slot.pins == 0 {
                self.forget(&mut slots, path);
            }
        }
    }

    /// Forgets `path`; its subscribers see the end of their stream.
    #[cfg(test)]
    pub(crate) fn remove(&self, path: &str) {
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        if slots.contains_key(path) {
            self.forget(&mut slots, path);
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

/// Calls [`Cache::release`] for `path` on drop (a `get`'s channel).
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
        assert!(
            !Arc::ptr_eq(
                &cache.publish(&Arc::from("/a"), snap(&[])),
                &cache.publish(&Arc::from("/a"), snap(&[]))
            ),
            "a path nothing wants is not kept"
        );
        cache.pin("/a", WATCHED);
        let first = cache.publish(&Arc::from("/a"), snap(&["x"]));
        assert!(
            Arc::ptr_eq(&first, &cache.publish(&Arc::from("/a"), snap(&["x"]))),
            "identical snapshots are not published"
        );
        let (mut rx, _) = cache.subscribe("/a");
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
        for path in ["/a", "/a/x", "/a/x/deeper", "/b"] {
            cache.pin(path, WATCHED);
        }
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
        drop(cache.subscribe("/a"));
        cache.publish(&Arc::from("/a"), snap(&[]));
        assert!(cache.slots.read().unwrap()["/a"].subscribers.is_none());
        let (rx, _) = cache.subscribe("/a");
        assert!(rx.borrow().is_some(), "a new subscriber still starts from the latest");
    }

    #[test]
    fn a_path_is_wanted_while_pinned_or_subscribed_and_every_change_is_noted() {
        let cache = Cache::default();
        let (rx, key) = cache.subscribe("/s");
        cache.publish(&key, snap(&[]));
        assert!(cache.wanted("/s"));
        drop(rx);
        cache.release_subscriber(&key);
        assert!(cache.get("/s").is_none(), "the last subscriber's end forgets an unpinned path");
        let watched = cache.pin("/w", WATCHED);
        let (rx, _) = cache.subscribe("/w");
        drop(rx);
        cache.release_subscriber(&watched);
        assert!(cache.wanted("/w"), "a pin keeps it");
        assert!(!cache.remove_if_unwanted("/w"));
        // A registration survives unwatch; the watch pin does not.
        let registered: Arc<str> = Arc::from("/r");
        cache.set_goal_pins(&registered, REGISTERED);
        cache.pin("/r", WATCHED);
        let (rx, _) = cache.subscribe("/r");
        cache.unwatch("/r");
        assert!(rx.has_changed().is_ok(), "a registration's subscriptions go on");
        cache.unwatch("/w");
        assert!(!cache.wanted("/w") && cache.remove_if_unwanted("/w"));
        cache.set_goal_pins(&registered, 0);
        drop(rx);
        assert!(cache.remove_if_unwanted("/r"));
        let notes = cache.take_notes();
        assert_eq!(notes.len(), 3, "one note per path: {notes:?}");
        assert_eq!((notes["/s"], notes["/w"], notes["/r"]), (false, true, true));
        assert!(cache.take_notes().is_empty());
    }
}
