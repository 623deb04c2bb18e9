//! A service's instances kept decoded and current, with each change saying
//! which instances were added, removed or changed (what Curator's
//! `ServiceCacheListener.cacheChanged()` never says: CURATOR-380/470).

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

use futures::stream::FuturesUnordered;
use futures::{Future, FutureExt, StreamExt};

use super::{decode_child, detect, BadChild, Decoded, Format, Instance, Instances};
use crate::{Object, Registry, Result, Snapshot, Subscription};

/// One change of a service's instances.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct InstanceChange {
    /// The whole list now.
    pub instances: Instances,
    /// Instances that appeared (all of them in the first change).
    pub added: Vec<Arc<Instance>>,
    /// Instances that went away.
    pub removed: Vec<Arc<Instance>>,
    /// Instances whose data changed: `(before, after)`.
    pub changed: Vec<(Arc<Instance>, Arc<Instance>)>,
}

/// Which subscription an event came from.
enum Source {
    Dir,
    Child(String, u64),
}

type Next = Pin<Box<dyn Future<Output = (Source, Subscription, Option<Arc<Snapshot>>)> + Send>>;

fn next_of(source: Source, mut subscription: Subscription) -> Next {
    Box::pin(async move {
        let snapshot = subscription.next().await;
        (source, subscription, snapshot)
    })
}

/// A child's latest snapshot.
struct Child {
    generation: u64,
    snapshot: Option<Arc<Snapshot>>,
}

/// A service directory's instances, followed: see
/// [`Registry::watch_instances`].
pub struct InstanceWatch {
    registry: Registry,
    dir: String,
    format: Option<Format>,
    pending: FuturesUnordered<Next>,
    dir_snapshot: Option<Arc<Snapshot>>,
    children: BTreeMap<String, Child>,
    next_generation: u64,
    /// The instances last handed out, by node name, and the bad children.
    last: (BTreeMap<String, Arc<Instance>>, Vec<BadChild>),
    /// Whether the first list was handed out.
    handed_out: bool,
}

impl std::fmt::Debug for InstanceWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceWatch").field("dir", &self.dir).field("format", &self.format).finish()
    }
}

impl Registry {
    /// Follows the instances of the service directory `dir` (in `format`,
    /// or the one its children show): [`InstanceWatch::next`] gives the
    /// whole list first, then one [`InstanceChange`] per change with the
    /// instances added, removed and changed. The directory and its
    /// children stay watched while the watch lives (under the directory's
    /// one watch); dropping it unwatches them.
    ///
    /// # Errors
    /// [`crate::Error::InvalidPath`]; [`crate::Error::Closed`].
    pub fn watch_instances(&self, dir: &str, format: Option<Format>) -> Result<InstanceWatch> {
        let subscription = self.subscribe(dir)?;
        let pending = FuturesUnordered::new();
        pending.push(next_of(Source::Dir, subscription));
        Ok(InstanceWatch {
            registry: self.clone(),
            dir: dir.to_string(),
            format,
            pending,
            dir_snapshot: None,
            children: BTreeMap::new(),
            next_generation: 0,
            last: Default::default(),
            handed_out: false,
        })
    }
}

impl InstanceWatch {
    /// The next change: the whole list the first time (once every child
    /// has been read), then each change that adds, removes or changes an
    /// instance or a bad child; changes that arrive together come as one.
    /// `None` once the registry is closed.
    ///
    /// # Cancellation safety
    /// Cancel-safe: a cancelled call loses no change; the next call
    /// reports it.
    pub async fn next(&mut self) -> Option<InstanceChange> {
        loop {
            let event = self.pending.next().await?;
            let mut ended = self.take(event);
            // Everything already there comes in the same change.
            while let Some(Some(event)) = self.pending.next().now_or_never() {
                ended |= self.take(event);
            }
            if ended {
                return None;
            }
            let unread = self.dir_snapshot.is_none() || self.children.values().any(|c| c.snapshot.is_none());
            if !self.handed_out && unread {
                continue; // the first list waits for every first read
            }
            if let Some(change) = self.change() {
                return Some(change);
            }
        }
    }

    /// Takes one event; `true` when the directory's stream ended.
    fn take(
        &mut self,
        (source, subscription, snapshot): (Source, Subscription, Option<Arc<Snapshot>>),
    ) -> bool {
        match source {
            Source::Dir => {
                let Some(snapshot) = snapshot else { return true };
                self.follow_children(&snapshot);
                self.dir_snapshot = Some(snapshot);
                self.pending.push(next_of(Source::Dir, subscription));
            }
            Source::Child(name, generation) => {
                let Some(child) = self.children.get_mut(&name).filter(|c| c.generation == generation) else {
                    return false; // a child that left: its subscription goes
                };
                if snapshot.is_some() {
                    child.snapshot = snapshot;
                    self.pending.push(next_of(Source::Child(name, generation), subscription));
                }
            }
        }
        false
    }

    /// Subscribes to new children and forgets those that left.
    fn follow_children(&mut self, dir: &Snapshot) {
        self.children.retain(|name, _| dir.children.binary_search(name).is_ok());
        for name in &dir.children {
            if self.children.contains_key(name) {
                continue;
            }
            let path = crate::path::join(&self.dir, name);
            let Ok(subscription) = self.registry.subscribe(&path) else { continue };
            self.next_generation += 1;
            let generation = self.next_generation;
            self.children.insert(name.clone(), Child { generation, snapshot: None });
            self.pending.push(next_of(Source::Child(name.clone(), generation), subscription));
        }
    }

    /// The change since the last list handed out, if there is one.
    fn change(&mut self) -> Option<InstanceChange> {
        let dir = self.dir_snapshot.clone()?;
        let empty = Object::new();
        let read: Vec<(&str, &Object)> = self
            .children
            .iter()
            .filter_map(|(name, child)| child.snapshot.as_ref().map(|s| (name.as_str(), s)))
            .filter(|(_, snapshot)| snapshot.exists())
            .map(|(name, snapshot)| (name, snapshot.data.as_ref().unwrap_or(&empty)))
            .collect();
        let format = self.format.or_else(|| detect(read.iter().copied()));
        let (previous, previous_bad) = std::mem::take(&mut self.last);
        let mut now = BTreeMap::new();
        let mut bad = Vec::new();
        if let Some(format) = format {
            for (key, data) in &read {
                // An instance whose node did not change keeps its Arc.
                let kept = previous.get(*key).filter(|i| &i.data == *data && i.format == format);
                match kept {
                    Some(instance) => {
                        now.insert(key.to_string(), instance.clone());
                    }
                    None => match decode_child(format, key, data) {
                        Decoded::Instance(instance) => {
                            now.insert(key.to_string(), Arc::new(*instance));
                        }
                        Decoded::Other => {}
                        Decoded::Bad(reason) => bad.push(BadChild { key: key.to_string(), reason }),
                    },
                }
            }
        }
        if format == Some(Format::ServerSet) {
            // Finagle's weight vectors, over the whole membership.
            let weighed = super::serverset::weigh(&read, now.values().cloned().collect());
            now = weighed.into_iter().map(|i| (i.key.clone(), i)).collect();
        }
        let added: Vec<_> =
            now.iter().filter(|(k, _)| !previous.contains_key(*k)).map(|(_, i)| i.clone()).collect();
        let removed: Vec<_> =
            previous.iter().filter(|(k, _)| !now.contains_key(*k)).map(|(_, i)| i.clone()).collect();
        let changed: Vec<_> = now
            .iter()
            .filter_map(|(k, i)| {
                previous.get(k).filter(|p| !Arc::ptr_eq(p, i)).map(|p| (p.clone(), i.clone()))
            })
            .collect();
        let quiet = added.is_empty() && removed.is_empty() && changed.is_empty() && bad == previous_bad;
        let instances = Instances {
            path: dir.path.to_string(),
            format,
            instances: now.values().cloned().collect(),
            bad: bad.clone(),
            stale: dir.is_stale(),
        };
        self.last = (now, bad);
        if quiet && self.handed_out {
            return None;
        }
        self.handed_out = true;
        Some(InstanceChange { instances, added, removed, changed })
    }
}
