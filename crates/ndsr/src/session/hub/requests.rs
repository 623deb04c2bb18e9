//! What callers and the supervisor ask of the hub: commands, the cache's
//! notes, goals, sessions.

use super::*;

impl Hub {
    /// Takes a command; returns the path whose next step is due.
    pub(super) fn command(&mut self, cmd: HubCmd) -> Option<Arc<str>> {
        match cmd {
            HubCmd::Session { client, epoch } => {
                self.session(client, epoch);
                None
            }
            HubCmd::Lost { session } => {
                self.lost(session);
                None
            }
            HubCmd::Close => None,
            HubCmd::Goal { path, goal, reply } => {
                let path = self.ensure(&path);
                let previous = self.set_goal(&path, Some(goal));
                if let Some(record) = self.records.get_mut(&path) {
                    // A new goal starts its counts afresh (those lent to a
                    // running operation are dropped when it ends).
                    record.counters = None;
                    record.counters_stale = record.is_busy();
                    if record.given_up.take().is_some() {
                        self.given_up -= 1;
                        self.gauges();
                    }
                    self.unset_given_up.remove(path.as_ref());
                }
                let _ = reply.send(previous);
                Some(path)
            }
            HubCmd::Restore { path, failed, previous, reply } => {
                if let Some((key, record)) = self.records.get_key_value(path.as_str()) {
                    let key = key.clone();
                    if record.goal.as_ref() == Some(&failed) {
                        self.set_goal(&key, previous);
                    }
                    // (A registration given up meanwhile has no goal left.)
                    self.forget_if_unwanted(&key);
                }
                let _ = reply.send(());
                None
            }
            HubCmd::Unset { path, reply } => {
                // A registration given up is withdrawn too (once the
                // caller of its `set_node` has its answer).
                let given_up = match self.records.get_mut(path.as_str()) {
                    Some(record) if record.has_commands() => {
                        // Withdrawn when the record goes.
                        if record.given_up.is_some() {
                            self.unset_given_up.insert(Arc::from(path.as_str()));
                        }
                        None
                    }
                    Some(record) => record.given_up.take(),
                    None => self.gave_up.remove(path.as_str()),
                };
                if given_up.is_some() {
                    self.given_up -= 1;
                    self.gauges();
                }
                let registered = match self.records.get_key_value(path.as_str()) {
                    Some((key, record)) if record.goal.is_some() => {
                        let key = key.clone();
                        self.set_goal(&key, Some(Goal::Absent));
                        true
                    }
                    _ => false,
                };
                let _ = reply.send(registered);
                None
            }
            HubCmd::Watch { path, reply } => {
                let registered = self
                    .records
                    .get(path.as_str())
                    .is_some_and(|r| matches!(r.goal, Some(Goal::Ephemeral(_))));
                if registered {
                    let _ = reply.send(false);
                    return None;
                }
                let key = self.shared.cache.pin(&path, crate::cache::WATCHED);
                let _ = reply.send(true);
                Some(self.ensure(&key))
            }
            HubCmd::Registration { path, reply } => {
                let bytes = self.records.get(path.as_str()).and_then(|r| match &r.goal {
                    Some(Goal::Ephemeral(bytes)) => Some(bytes.clone()),
                    _ => None,
                });
                let _ = reply.send(bytes);
                None
            }
            HubCmd::Path(path, cmd) => {
                let path = self.ensure(&path);
                if let Some(record) = self.records.get_mut(&path) {
                    record.pending().cmds.push_back(cmd);
                }
                Some(path)
            }
            HubCmd::Lease { epoch, reply } => {
                // None once the registry is closing: its session must end.
                let closing = *self.shared.state.borrow() == crate::session::State::Closed;
                let lendable = !self.dead && !closing && self.epoch == epoch;
                if let Some(client) = self.client.as_ref().filter(|_| lendable) {
                    let _ =
                        reply.send(Lease { client: client.clone(), epoch, parents: self.parents.clone() });
                }
                None
            }
        }
    }

    /// Takes the cache's notes: paths now wanted start, paths no longer
    /// wanted are forgotten.
    pub(super) fn notes(&mut self) {
        let notes = self.shared.cache.take_notes();
        for (path, unwatched) in notes {
            if unwatched {
                // `unwatch` ends keeping an unset registration's path absent.
                if self.records.get(&path).is_some_and(|r| r.goal == Some(Goal::Absent)) {
                    self.set_goal(&path, None);
                }
            }
            if self.forget_if_unwanted(&path) {
                continue;
            }
            let path = self.ensure(&path);
            if let Some(record) = self.records.get_mut(&path) {
                // Its cache entry went (its last subscriber or `unwatch`)
                // and came back empty: read the path afresh for its new
                // subscribers, after the operation that runs, if one does
                // (it may have published to the entry that went).
                if self.shared.cache.get(&path).is_none() {
                    record.set_unstarted(true);
                }
            }
            self.next_step(&path);
        }
    }

    /// Makes `goal` the path's goal (the cache pins follow); returns the
    /// goal it replaced.
    pub(super) fn set_goal(&mut self, path: &Arc<str>, goal: Option<Goal>) -> Option<Goal> {
        let record = self.records.get_mut(path)?;
        let registered = matches!(goal, Some(Goal::Ephemeral(_)));
        self.shared.cache.set_goal_pins(path, Goal::pins(goal.as_ref()));
        let previous = std::mem::replace(&mut record.goal, goal);
        let was = matches!(previous, Some(Goal::Ephemeral(_)));
        self.registrations = self.registrations + usize::from(registered) - usize::from(was);
        self.gauges();
        previous
    }

    /// Forgets `path` if nothing wants it any more (no goal, and nothing in
    /// the cache); `true`: it is gone.
    ///
    /// A record with a goal, a caller's command waiting, or an operation
    /// running stays (its caller hears the outcome first); it is looked at
    /// again when its operation ends.
    pub(super) fn forget_if_unwanted(&mut self, path: &str) -> bool {
        if self.records.get(path).is_some_and(|r| r.goal.is_some() || r.has_commands() || !r.is_idle()) {
            return false;
        }
        if !self.shared.cache.remove_if_unwanted(path) {
            return false;
        }
        if let Some((key, record)) = self.records.remove_entry(path) {
            record.abort();
            self.watches.unwanted(path, record.cover.as_ref());
            if let Some(drops) = record.given_up {
                if self.unset_given_up.remove(&key) {
                    // Unset meanwhile: withdrawn now that its caller has
                    // its answer.
                    self.given_up -= 1;
                } else {
                    // A caller's command may not have reached the hub yet
                    // (see `Hub::gave_up`); still counted in the gauge.
                    self.gave_up.insert(key, drops);
                }
            }
            self.gauges();
        }
        true
    }

    /// Publishes the gauges of `Registry::stats`.
    pub(super) fn gauges(&self) {
        let counters = &self.shared.counters;
        counters.watched_paths.store(self.records.len(), Relaxed);
        counters.registrations.store(self.registrations, Relaxed);
        counters.registrations_given_up.store(self.given_up, Relaxed);
    }

    /// A new session: every record starts afresh with its client,
    /// registrations first, so that watchers of a service see our own
    /// members back before they re-read the member list.
    pub(super) fn session(&mut self, client: Client, epoch: u64) {
        tracing::debug!(epoch, "the hub has a new session");
        self.stop_work();
        self.client = Some(client);
        self.epoch = epoch;
        self.dead = false;
        let mut paths: Vec<(bool, Arc<str>)> = Vec::with_capacity(self.records.len());
        for (path, record) in &mut self.records {
            self.next_generation += 1;
            record.restart(self.next_generation);
            paths.push((record.goal.is_none(), path.clone()));
        }
        paths.sort_by_key(|(watch_only, _)| *watch_only);
        for (_, path) in &paths {
            self.watches.wanted(path);
        }
        for (_, path) in &paths {
            self.next_step(path);
        }
    }

    /// The session is lost: nothing runs until the next; what callers
    /// asked for is kept.
    pub(super) fn lost(&mut self, session: Option<i64>) {
        if let Some(id) = session {
            Arc::make_mut(&mut self.past).insert(id);
        }
        self.stop_work();
        self.client = None;
        for record in self.records.values_mut() {
            self.next_generation += 1;
            record.restart(self.next_generation);
        }
    }

    /// Drops every operation, watch and watcher of the session (and so
    /// every clone of its client: pitfall 15, the session closes once the
    /// last is dropped).
    pub(super) fn stop_work(&mut self) {
        self.ops = FuturesUnordered::new();
        self.armed = FuturesUnordered::new();
        self.adding = FuturesUnordered::new();
        self.waiting.clear();
        self.watches = WatchTable::default();
    }
}
