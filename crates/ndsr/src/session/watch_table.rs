//! The watch table: the persistent recursive watches an epoch holds (its
//! *roots*) and the paths each one covers.
//!
//! A root's one watch (one `addWatch`, one client-side watcher) delivers
//! the events of its whole subtree, so every wanted path under it needs no
//! watch of its own: the hub hands each event to the path it names and to
//! that path's parent, when the root covers them. A wanted path gets
//! its cover when it starts, in this order:
//!
//! 1. the nearest root at the path or above it (a service that registers
//!    and also follows its peers' list needs one watch, not two);
//! 2. its parent, made a shared root, once [`share_parent_watch_at`] paths
//!    under that parent are wanted (many registrations or watches under
//!    one service: one watch instead of one per path);
//! 3. otherwise a root of its own.
//!
//! A shared parent's watch also delivers the events of siblings nobody
//! here wants (bytes, never reads). Below the threshold a path has its own
//! watch, so that one registrant among 1,000 members never receives every
//! sibling's events; at or above it, the memory saved (about 900 bytes per
//! path: a client-side watcher and its waiting future) outweighs the
//! events. See `docs/DESIGN.md` for the figures.
//!
//! A root lives while it covers a path. On every reconnect its watch is
//! added again (zookeeper-client 0.11.2 does not re-send persistent
//! watches, pitfall 17; `addWatch` of the same mode is idempotent on the
//! server), the old watcher held until the new one is in place (dropping a
//! path's last watcher removes the watch on the server), and then every
//! covered path is re-read.
//!
//! [`share_parent_watch_at`]: crate::RegistryBuilder::share_parent_watch_at

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::future::AbortHandle;
use zookeeper_client::{AddWatchMode, Client, PersistentWatcher};

use crate::path::parent;
use crate::session::Shared;
use crate::{Error, Result};

/// Each root and path record gets a new generation, so that what an earlier
/// one of the same path left in flight is recognised and dropped.
pub(crate) type Generation = u64;

/// One persistent recursive watch and the paths it covers.
pub(crate) struct Root {
    pub(crate) generation: Generation,
    /// The wanted paths this watch covers (the root's own path among them
    /// when it is wanted).
    pub(crate) members: HashSet<Arc<str>>,
    /// Made for a parent that several wanted paths share.
    pub(crate) shared: bool,
    pub(crate) phase: Phase,
}

/// Where a root's watch is.
pub(crate) enum Phase {
    /// Being added: these members start once it is in place.
    Adding { op: AbortHandle, waiting: Vec<Arc<str>> },
    /// In place; its watcher waits for the next event.
    Armed(AbortHandle),
    /// Reconnected: being added again; the old watcher is held until then.
    Readding { op: AbortHandle, held: PersistentWatcher },
}

impl Phase {
    fn abort(&self) {
        match self {
            Phase::Adding { op, .. } | Phase::Readding { op, .. } | Phase::Armed(op) => op.abort(),
        }
    }
}

/// Where a starting path's watch comes from.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Cover {
    /// This existing root covers it.
    Existing(Arc<str>),
    /// A new root at this path (its parent, or itself).
    New { at: String, shared: bool },
}

/// The pure choice of a starting path's cover (see the module docs).
/// `root_at` finds an existing root; `wanted_under_parent` counts the
/// wanted paths under the path's parent, this one included.
pub(crate) fn choose_cover(
    path: &str,
    root_at: impl Fn(&str) -> Option<Arc<str>>,
    wanted_under_parent: usize,
    share_at: usize,
    refused: impl Fn(&str) -> bool,
) -> Cover {
    let mut at = Some(path);
    while let Some(p) = at {
        if let Some(root) = root_at(p) {
            return Cover::Existing(root);
        }
        at = parent(p);
    }
    match parent(path) {
        // Never the whole tree (or the whole chroot).
        Some(dir) if dir != "/" && wanted_under_parent >= share_at && !refused(dir) => {
            Cover::New { at: dir.to_string(), shared: true }
        }
        _ => Cover::New { at: path.to_string(), shared: false },
    }
}

/// The roots of one epoch.
#[derive(Default)]
pub(crate) struct WatchTable {
    pub(crate) roots: HashMap<Arc<str>, Root>,
    /// Wanted paths under each parent (for the sharing threshold).
    wanted: HashMap<Arc<str>, usize>,
    /// Parents whose shared watch the server refused (no read permission):
    /// paths under them get watches of their own.
    refused: HashSet<String>,
}

impl WatchTable {
    /// Counts a newly wanted path.
    pub(crate) fn wanted(&mut self, path: &str) {
        if let Some(dir) = parent(path) {
            match self.wanted.get_mut(dir) {
                Some(n) => *n += 1,
                None => {
                    self.wanted.insert(Arc::from(dir), 1);
                }
            }
        }
    }

    /// Uncounts a path no longer wanted and takes it out of `cover`'s
    /// members; a root that covers nothing more is dropped (its watch
    /// removed).
    pub(crate) fn unwanted(&mut self, path: &str, cover: Option<&Arc<str>>) {
        if let Some(dir) = parent(path) {
            if let Some(n) = self.wanted.get_mut(dir) {
                *n -= 1;
                if *n == 0 {
                    self.wanted.remove(dir);
                }
            }
        }
        let Some(cover) = cover else { return };
        let Some(root) = self.roots.get_mut(cover) else { return };
        root.members.remove(path);
        if root.members.is_empty() {
            if let Some(root) = self.roots.remove(cover) {
                root.phase.abort();
            }
        }
    }

    /// The cover of a path that starts now.
    pub(crate) fn choose(&self, path: &str, share_at: usize) -> Cover {
        let wanted = parent(path).and_then(|dir| self.wanted.get(dir)).copied().unwrap_or(0);
        choose_cover(
            path,
            |p| self.roots.get_key_value(p).map(|(key, _)| key.clone()),
            wanted,
            share_at,
            |dir| self.refused.contains(dir),
        )
    }

    /// Remembers that the server refused a shared watch on `dir`.
    pub(crate) fn refuse(&mut self, dir: &str) {
        self.refused.insert(dir.to_string());
    }
}

/// Adds a persistent recursive watch on `path`, retrying while the session
/// lives. `Ok(None)`: the session ended. An error is returned only for a
/// shared root that the server refuses (its paths then watch themselves);
/// a path's own watch is retried until it is added.
pub(crate) async fn add_watch(
    shared: &Shared,
    client: &Client,
    path: &str,
    shared_root: bool,
) -> Result<Option<PersistentWatcher>> {
    let mut delay = std::time::Duration::from_millis(50);
    loop {
        // Adding and re-adding watches is the background work that floods
        // a server after a reconnect: it is what the rate limit paces.
        shared.throttle().await;
        match shared.call("watch", path, client.watch(path, AddWatchMode::PersistentRecursive)).await {
            Ok(watcher) => return Ok(Some(watcher)),
            Err(_) if client.state().is_terminated() => return Ok(None),
            Err(e @ (Error::NotAuthorized { .. } | Error::ZooKeeper { .. })) if shared_root => return Err(e),
            Err(e) => {
                tracing::warn!(path, error = %e, "cannot add watch; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(2));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots(at: &[&str]) -> impl Fn(&str) -> Option<Arc<str>> {
        let set: Vec<Arc<str>> = at.iter().map(|p| Arc::from(*p)).collect();
        move |p| set.iter().find(|r| &***r == p).cloned()
    }

    const NONE_REFUSED: fn(&str) -> bool = |_| false;

    #[test]
    fn an_existing_root_at_or_above_the_path_covers_it() {
        let cover = choose_cover("/a/b/c", roots(&["/a"]), 1, 8, NONE_REFUSED);
        assert_eq!(cover, Cover::Existing(Arc::from("/a")));
        let cover = choose_cover("/a/b", roots(&["/a/b", "/a"]), 1, 8, NONE_REFUSED);
        assert_eq!(cover, Cover::Existing(Arc::from("/a/b")), "the nearest root wins");
        let cover = choose_cover("/a", roots(&["/"]), 1, 8, NONE_REFUSED);
        assert_eq!(cover, Cover::Existing(Arc::from("/")), "a root the user watches at / is used");
    }

    #[test]
    fn a_path_watches_itself_below_the_threshold() {
        let cover = choose_cover("/s/web/i-1", roots(&["/t"]), 7, 8, NONE_REFUSED);
        assert_eq!(cover, Cover::New { at: "/s/web/i-1".into(), shared: false });
    }

    #[test]
    fn the_parent_is_shared_at_the_threshold() {
        let cover = choose_cover("/s/web/i-8", roots(&[]), 8, 8, NONE_REFUSED);
        assert_eq!(cover, Cover::New { at: "/s/web".into(), shared: true });
    }

    #[test]
    fn never_the_whole_tree_nor_a_refused_parent() {
        let cover = choose_cover("/top", roots(&[]), 100, 8, NONE_REFUSED);
        assert_eq!(cover, Cover::New { at: "/top".into(), shared: false });
        let cover = choose_cover("/s/x", roots(&[]), 100, 8, |dir| dir == "/s");
        assert_eq!(cover, Cover::New { at: "/s/x".into(), shared: false });
    }

    #[test]
    fn a_root_goes_with_its_last_member() {
        let mut table = WatchTable::default();
        let (handle, _registration) = AbortHandle::new_pair();
        let key: Arc<str> = Arc::from("/s");
        let members = ["/s/a", "/s/b"].iter().map(|p| Arc::from(*p)).collect();
        let root = Root { generation: 1, members, shared: true, phase: Phase::Armed(handle.clone()) };
        table.roots.insert(key.clone(), root);
        table.wanted("/s/a");
        table.wanted("/s/b");
        table.unwanted("/s/a", Some(&key));
        assert!(table.roots.contains_key("/s") && !handle.is_aborted());
        table.unwanted("/s/b", Some(&key));
        assert!(table.roots.is_empty() && handle.is_aborted(), "its watcher is dropped");
        assert!(table.wanted.is_empty());
    }
}
