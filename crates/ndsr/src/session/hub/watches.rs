//! The hub's watches: each path's cover, the roots' watchers and their
//! events.

use super::*;

impl Hub {
    /// Gives a starting path its cover; `false` while that root's watch is
    /// being added (the path starts once it is in place).
    pub(super) fn cover(&mut self, path: &Arc<str>) -> bool {
        let Some(record) = self.records.get(path) else { return false };
        if let Some(cover) = &record.cover {
            let adding =
                self.watches.roots.get(cover).is_some_and(|r| matches!(r.phase, Phase::Adding { .. }));
            return !adding;
        }
        let root = match self.watches.choose(path, self.shared.config.share_parent_watch_at_or_default()) {
            Cover::Existing(root) => root,
            Cover::New { at, shared } => self.add_root(at, shared),
        };
        if let Some(record) = self.records.get_mut(path) {
            record.cover = Some(root.clone());
        }
        let Some(root) = self.watches.roots.get_mut(&root) else { return false };
        root.members.insert(path.clone());
        match &mut root.phase {
            Phase::Adding { waiting, .. } => {
                waiting.push(path.clone());
                false
            }
            _ => true,
        }
    }

    /// Starts adding a root's watch.
    pub(super) fn add_root(&mut self, at: String, shared: bool) -> Arc<str> {
        let key: Arc<str> = match self.records.get_key_value(at.as_str()) {
            Some((key, _)) => key.clone(),
            None => Arc::from(at),
        };
        let generation = self.generation();
        let op = self.start_add(&key, generation, shared);
        let root = Root {
            generation,
            members: Default::default(),
            shared,
            phase: Phase::Adding { op, waiting: Vec::new() },
        };
        self.watches.roots.insert(key.clone(), root);
        key
    }

    pub(super) fn start_add(
        &mut self,
        root: &Arc<str>,
        generation: Generation,
        shared_root: bool,
    ) -> AbortHandle {
        let (shared, client, path) = (self.shared.clone(), self.client.clone(), root.clone());
        let (adding, handle) = futures::future::abortable(async move {
            match client {
                Some(client) => watch_table::add_watch(&shared, &client, &path, shared_root).await,
                None => Ok(None),
            }
        });
        let root = root.clone();
        self.adding.push(Box::pin(async move { (root, generation, adding.await) }));
        handle
    }

    /// A root's watch was added (again).
    pub(super) fn added(
        &mut self,
        key: Arc<str>,
        generation: Generation,
        added: crate::Result<Option<PersistentWatcher>>,
    ) {
        if self.watches.roots.get(&key).is_none_or(|r| r.generation != generation) {
            return;
        }
        let watcher = match added {
            Ok(Some(watcher)) => watcher,
            Ok(None) => return self.die(),
            Err(e) => {
                // A shared parent the server will not let us watch: its
                // paths watch themselves.
                tracing::info!(path = %key, error = %e, "cannot share this parent's watch; its paths watch themselves");
                self.watches.refuse(&key);
                let Some(root) = self.watches.roots.remove(&key) else { return };
                for member in root.members {
                    if let Some(record) = self.records.get_mut(&member) {
                        // Started afresh (a re-read is harmless).
                        record.cover = None;
                        record.set_unstarted(true);
                    }
                    self.next_step(&member);
                }
                return;
            }
        };
        let armed = self.arm(&key, generation, watcher);
        let Some(root) = self.watches.roots.get_mut(&key) else { return };
        // The old watcher (after a reconnect) goes now that the new one is
        // in place.
        match std::mem::replace(&mut root.phase, Phase::Armed(armed)) {
            Phase::Adding { waiting, .. } => {
                for member in waiting {
                    self.next_step(&member);
                }
            }
            Phase::Readding { held, .. } => {
                drop(held);
                let members: Vec<Arc<str>> = root.members.iter().cloned().collect();
                for member in members {
                    if let Some(record) = self.records.get_mut(&member) {
                        record.pending().reconnected = true;
                    }
                    self.next_step(&member);
                }
            }
            Phase::Armed(_) => {}
        }
    }

    /// Waits for the next event of a root's watcher.
    pub(super) fn arm(
        &mut self,
        root: &Arc<str>,
        generation: Generation,
        watcher: PersistentWatcher,
    ) -> AbortHandle {
        let (waiting, handle) = futures::future::abortable(async move {
            let mut watcher = watcher;
            let event = watcher.changed().await;
            (event, watcher)
        });
        let root = root.clone();
        self.armed.push(Box::pin(async move { (root, generation, waiting.await) }));
        handle
    }

    pub(super) fn event(
        &mut self,
        key: Arc<str>,
        generation: Generation,
        event: WatchedEvent,
        watcher: PersistentWatcher,
    ) {
        if self.watches.roots.get(&key).is_none_or(|r| r.generation != generation) {
            return;
        }
        if event.event_type == EventType::Session {
            if event.session_state.is_terminated() {
                // pitfall 11: never await the watcher after a terminal event.
                return self.die();
            }
            if matches!(event.session_state, SessionState::SyncConnected | SessionState::ConnectedReadOnly) {
                let shared_root = self.watches.roots.get(&key).is_some_and(|r| r.shared);
                let op = self.start_add(&key, generation, shared_root);
                if let Some(root) = self.watches.roots.get_mut(&key) {
                    root.phase = Phase::Readding { op, held: watcher };
                }
            } else {
                let armed = self.arm(&key, generation, watcher);
                if let Some(root) = self.watches.roots.get_mut(&key) {
                    root.phase = Phase::Armed(armed);
                }
            }
            return;
        }
        let armed = self.arm(&key, generation, watcher);
        if let Some(root) = self.watches.roots.get_mut(&key) {
            root.phase = Phase::Armed(armed);
        }
        // The event concerns the node it names and that node's parent.
        let targets = [Some(event.path.as_str()), parent(&event.path)];
        for target in targets.into_iter().flatten() {
            let Some((path, _)) = self.records.get_key_value(target) else { continue };
            let path = path.clone();
            let Some(record) = self.records.get_mut(&path) else { continue };
            if record.cover.as_ref() != Some(&key) {
                continue; // another root delivers it to this path
            }
            record.pending().events.push(event.clone());
            self.next_step(&path);
        }
    }

    /// The session ended (a terminal event): nothing more is done until
    /// the supervisor hands over the next one; callers' commands wait in
    /// their records for it.
    pub(super) fn die(&mut self) {
        self.dead = true;
    }
}
