//! The task behind an [`Election`](super::Election): makes the contender's
//! node, finds its place, watches the contender ahead of it, and holds the
//! state.

use std::time::Duration;

use tokio::time::Instant;
use zookeeper_client::{Client, CreateMode};

use super::*;
use crate::session::Lease;
use crate::State;

/// How many times a resignation's delete is tried before the node is left
/// to the session's end.
const RESIGN_ATTEMPTS: u32 = 8;

/// What a step of the task comes to.
enum Flow {
    /// Look again.
    Again,
    /// The registry closed.
    Closed,
}

pub(super) struct Contender {
    registry: Registry,
    path: String,
    id: String,
    layout: ElectionLayout,
    lost_after: f64,
    /// How long a leader rides out a lost connection (within `lost_after`).
    grace: Duration,
    /// Our node's name up to the sequence (unique to this contender).
    prefix: String,
    tx: watch::Sender<Leadership>,
    /// The earliest moment the server may expire the session, as of the
    /// last request it answered while this contender led.
    expiry: SessionExpiry,
    /// Our node: its name, its czxid (the token) when known, and the
    /// session (epoch) it was made in.
    node: Option<(String, Option<i64>, u64)>,
    /// Another layout's contenders were said to be there (said once).
    warned: bool,
}

impl Contender {
    pub(super) fn new(
        b: &ElectionBuilder,
        tx: watch::Sender<Leadership>,
        expiry: SessionExpiry,
    ) -> Contender {
        Contender {
            registry: b.registry.clone(),
            path: b.path.clone(),
            id: b.id.clone(),
            layout: b.layout,
            lost_after: b.lost_after,
            grace: b.grace,
            prefix: b.layout.prefix(uuid::Uuid::new_v4()),
            tx,
            expiry,
            node: None,
            warned: false,
        }
    }

    /// No longer leader, for `reason` (said by `Election::lost_reason`).
    fn lost(&self, reason: LostReason) {
        // Only a leader's loss has a reason worth keeping.
        if matches!(*self.tx.borrow(), Leadership::Leader { .. }) {
            self.expiry.lost(reason);
        }
        self.set(Leadership::Lost);
    }

    fn set(&self, state: Leadership) {
        self.tx.send_if_modified(|s| {
            let changed = *s != state;
            if changed {
                tracing::debug!(path = %self.path, ?state, "election");
                *s = state;
            }
            changed
        });
    }

    /// Checks the path and makes this contender's node; errors go to the
    /// caller of `join`.
    pub(super) async fn first(&mut self) -> Result<()> {
        let shared = &self.registry.shared;
        let lease = shared.lease(self.registry.deadline()).await?;
        self.ours(&lease.client).await?;
        self.create(&lease).await
    }

    /// Our layout's contenders of the path, sorted; another layout's is
    /// [`Error::LayoutMismatch`].
    async fn ours(&self, client: &Client) -> Result<Vec<(i64, String)>> {
        let shared = &self.registry.shared;
        let children = match shared.call("get_children", &self.path, client.list_children(&self.path)).await {
            Ok(children) => children,
            Err(e) if e.is_no_node() => Vec::new(),
            Err(e) => return Err(e),
        };
        self.sorted(children)
    }

    /// As [`ours`](Self::ours), with a watch of the path's children.
    async fn ours_watched(
        &self,
        client: &Client,
    ) -> Result<(Vec<(i64, String)>, Option<zookeeper_client::OneshotWatcher>)> {
        let shared = &self.registry.shared;
        match shared.call("get_children", &self.path, client.list_and_watch_children(&self.path)).await {
            Ok((children, watcher)) => Ok((self.sorted(children)?, Some(watcher))),
            Err(e) if e.is_no_node() => Ok((Vec::new(), None)),
            Err(e) => Err(e),
        }
    }

    fn sorted(&self, children: Vec<String>) -> Result<Vec<(i64, String)>> {
        let mismatch =
            |found| Error::LayoutMismatch { path: self.path.clone(), found, asked: self.layout.name() };
        // A lock's nodes of another client (a semaphore's holders, Curator's
        // read/write lock) sort or count differently too.
        let family = self.layout.lock_family();
        let mut ours = Vec::new();
        for child in children {
            match ElectionLayout::of_node(&child) {
                Some((layout, seq)) if layout == self.layout => ours.push((seq, child)),
                Some((layout, _)) => return Err(mismatch(layout.name())),
                None => match crate::lock::node_family(&child) {
                    Some(other) if other != family => return Err(mismatch(other)),
                    _ => {}
                },
            }
        }
        ours.sort();
        Ok(ours)
    }

    /// Makes our node (the path first, where missing). A create whose
    /// answer was lost is found by our unique prefix.
    async fn create(&mut self, lease: &Lease) -> Result<()> {
        let shared = &self.registry.shared;
        let client = &lease.client;
        // A create of ours sent earlier in this session, whose answer was
        // lost, may have made a node: adopt it rather than make a second.
        // Not knowing (an error) is not "none": tried again later.
        let session = self.registry.session().map(|s| s.id().0);
        let mine: Vec<String> = self
            .ours(client)
            .await?
            .into_iter()
            .map(|(_, n)| n)
            .filter(|n| n.starts_with(&self.prefix))
            .collect();
        for name in mine {
            let node = format!("{}/{name}", self.path);
            // Another session's (an expired one's, going with it) is not.
            if let Some(stat) = shared.call("exists", &node, client.check_stat(&node)).await? {
                if Some(stat.ephemeral_owner) == session {
                    self.node = Some((name, Some(stat.czxid), lease.epoch));
                    return Ok(());
                }
            }
        }
        let options = shared.create_options(CreateMode::EphemeralSequential);
        let name = format!("{}/{}", self.path, self.prefix);
        // The path made first, and again if someone removed it meanwhile
        // (the parents' cache still had it).
        let mut made = None;
        for _ in 0..2 {
            lease.parents.ensure(shared, client, &self.path).await?;
            let created =
                shared.call("create", &self.path, client.create(&name, self.id.as_bytes(), &options)).await;
            match created {
                Err(e) if e.is_no_node() => lease.parents.forget(&self.path),
                other => {
                    made = Some(other);
                    break;
                }
            }
        }
        let Some(made) = made else {
            return Err(Error::Contention {
                path: self.path.clone(),
                during: "while its election node was made",
                attempts: 2,
            });
        };
        match made {
            Ok((stat, seq)) => {
                // Made by this session: its czxid is the token (read again
                // before leading should the answer name another owner).
                let owned = self.registry.session().map(|s| s.id().0) == Some(stat.ephemeral_owner);
                self.node = Some((format!("{}{seq}", self.prefix), owned.then_some(stat.czxid), lease.epoch));
                Ok(())
            }
            Err(e) if e.is_no_node() => {
                lease.parents.forget(&self.path);
                Err(e)
            }
            Err(e) => {
                // Sent, perhaps made: look for it.
                let found = self.ours(client).await.ok().and_then(|ours| {
                    ours.into_iter().find(|(_, n)| n.starts_with(&self.prefix)).map(|(_, n)| n)
                });
                match found {
                    Some(name) => {
                        // Its czxid is read when it leads.
                        self.node = Some((name, None, lease.epoch));
                        Ok(())
                    }
                    None => Err(e),
                }
            }
        }
    }

    /// Runs until `stopped` (resign or drop) or the registry closes; then
    /// withdraws the node and ends.
    pub(super) async fn run(mut self, mut stopped: oneshot::Receiver<()>) {
        let mut states = self.registry.state_changes();
        loop {
            let flow = tokio::select! {
                biased;
                _ = &mut stopped => break,
                flow = self.step(&mut states) => flow,
            };
            if let Flow::Closed = flow {
                self.set(Leadership::Ended);
                return;
            }
        }
        self.set(Leadership::Ended);
        self.withdraw().await;
    }

    /// One look at the election, and the wait for what changes it.
    async fn step(&mut self, states: &mut watch::Receiver<State>) -> Flow {
        match self.registry.state() {
            State::Closed => return Flow::Closed,
            State::Connected => {}
            _ => {
                self.lost(LostReason::Disconnected);
                return match states.changed().await {
                    Ok(()) => Flow::Again,
                    Err(_) => Flow::Closed,
                };
            }
        }
        let shared = self.registry.shared.clone();
        let lease = match shared.lease(self.registry.deadline()).await {
            Ok(lease) => lease,
            Err(Error::Closed) => return Flow::Closed,
            Err(_) => {
                self.lost(LostReason::Disconnected);
                return Flow::Again;
            }
        };
        // A node of an earlier session went with it.
        if self.node.as_ref().is_some_and(|n| n.2 != lease.epoch) {
            self.node = None;
        }
        if self.node.is_none() {
            self.set(Leadership::Joining);
            if let Err(e) = self.create(&lease).await {
                tracing::warn!(path = %self.path, "cannot join the election (trying again): {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
                return Flow::Again;
            }
        }
        let Some((name, czxid, _)) = self.node.clone() else { return Flow::Again };
        // Any change of the contenders moves this one's place: watched.
        let listed = Instant::now();
        let (ours, children) = match self.ours_watched(&lease.client).await {
            Ok(found) => found,
            Err(e) => {
                let mixed = matches!(e, Error::LayoutMismatch { .. });
                if mixed && !std::mem::replace(&mut self.warned, true) {
                    tracing::warn!(path = %self.path, "{e}: not leading while it lasts");
                }
                self.lost(if mixed { LostReason::AnotherLayout } else { LostReason::Disconnected });
                tokio::time::sleep(Duration::from_millis(500)).await;
                return Flow::Again;
            }
        };
        // A second node of ours (a create whose answer was lost, then made
        // again) would stand in our own way: deleted.
        let doubles: Vec<String> = ours
            .iter()
            .map(|(_, n)| n)
            .filter(|n| n.starts_with(&self.prefix) && **n != name)
            .cloned()
            .collect();
        if !doubles.is_empty() {
            for double in doubles {
                let node = format!("{}/{double}", self.path);
                tracing::warn!(path = %self.path, "deleting a second node of this contender: {double}");
                let _ = shared.call("delete", &node, lease.client.delete(&node, None)).await;
            }
            return Flow::Again;
        }
        let Some(place) = ours.iter().position(|(_, n)| *n == name) else {
            // Deleted (by another client): join again.
            self.node = None;
            return Flow::Again;
        };
        let client = lease.client.clone();
        let epoch = lease.epoch;
        drop(lease);
        if place == 0 {
            let node = format!("{}/{name}", self.path);
            // The listing just answered is the latest word from the server.
            let mut sent = listed;
            let (token, watcher) = match czxid {
                // Made by this session (checked by epoch), listed just now:
                // owned by the live session, and its token known.
                Some(czxid) => (czxid, None),
                None => {
                    sent = Instant::now();
                    let found = shared.call("exists", &node, client.check_and_watch_stat(&node)).await;
                    let Ok((stat, watcher)) = found else { return Flow::Again };
                    let session = self.registry.session().map(|s| s.id().0);
                    match stat {
                        // Ours only if owned by this live session (CURATOR-696).
                        Some(stat) if Some(stat.ephemeral_owner) == session => {
                            if let Some(ours) = self.node.as_mut() {
                                ours.1 = Some(stat.czxid);
                            }
                            (stat.czxid, Some(watcher))
                        }
                        _ => {
                            self.node = None;
                            return Flow::Again;
                        }
                    }
                }
            };
            // Another layout's contender, arriving while this one leads,
            // is watched for too: by the watch of the listing that found
            // this one first (it was checked for other layouts).
            let Some(children) = children else { return Flow::Again };
            let limit = client.session_timeout().mul_f64(self.lost_after);
            if self.registry.state() != State::Connected || sent.elapsed() >= limit {
                return Flow::Again;
            }
            self.set(Leadership::Leader { token });
            let flow = self.hold(&client, epoch, &node, watcher, children, states, sent).await;
            // Whatever ended the hold, not leader until checked again.
            if matches!(*self.tx.borrow(), Leadership::Leader { .. }) {
                self.lost(LostReason::NodeGone);
            }
            flow
        } else {
            let Some(children) = children else { return Flow::Again };
            self.set(Leadership::Follower { position: place });
            tokio::select! {
                _ = children.changed() => Flow::Again,
                changed = states.changed() => if changed.is_ok() { Flow::Again } else { Flow::Closed },
            }
        }
    }

    /// Leads until our node changes, the connection is lost, or the server
    /// has not answered for `lost_after` of the session timeout (counted
    /// from when the last answered request was sent).
    #[allow(clippy::too_many_arguments)]
    async fn hold(
        &mut self,
        client: &Client,
        epoch: u64,
        node: &str,
        watcher: Option<zookeeper_client::OneshotWatcher>,
        children: zookeeper_client::OneshotWatcher,
        states: &mut watch::Receiver<State>,
        mut heard: Instant,
    ) -> Flow {
        let timeout = client.session_timeout();
        let limit = timeout.mul_f64(self.lost_after);
        let every = (timeout / 8).max(Duration::from_millis(50));
        let shared = self.registry.shared.clone();
        // Our node's own watch, when it was read; else its deletion shows
        // in the children's watch.
        let changed = async move {
            match watcher {
                Some(watcher) => {
                    watcher.changed().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::pin!(changed);
        let mut children = Box::pin(children.changed());
        let mut next_probe = Instant::now() + every;
        self.expiry.heard(heard, timeout);
        // While disconnected under a grace: when it runs out.
        let mut grace_until: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = &mut changed => return Flow::Again,
                () = async { tokio::time::sleep_until(grace_until.unwrap_or_else(Instant::now)).await }, if grace_until.is_some() => {
                    tracing::warn!(path = %self.path, "not reconnected within the grace of {:?}: no longer leader", self.grace);
                    self.lost(LostReason::Disconnected);
                    return Flow::Again;
                }
                // Exactly when the server has been silent too long, whatever
                // else is going on.
                () = tokio::time::sleep_until(heard + limit) => {
                    tracing::warn!(path = %self.path, "the server has not answered for {:?}: no longer leader", heard.elapsed());
                    self.lost(LostReason::Silent);
                    return Flow::Again;
                }
                _ = &mut children => {
                    // A contender came or went: another layout's means
                    // stepping down; else keep leading, watching again.
                    // Within the silence deadline, as everything else here.
                    let sent = Instant::now();
                    let listed = tokio::time::timeout_at(
                        heard + limit,
                        shared.call("get_children", &self.path, client.list_and_watch_children(&self.path)),
                    );
                    let Ok(listed) = listed.await else {
                        tracing::warn!(path = %self.path, "the server has not answered for {:?}: no longer leader", heard.elapsed());
                        self.lost(LostReason::Silent);
                        return Flow::Again;
                    };
                    match listed {
                        Ok((names, again)) => {
                            // Heard, if still in the session it leads in.
                            if shared.holds(epoch) {
                                heard = sent;
                                self.expiry.heard(heard, timeout);
                            }
                            let name = node.rsplit('/').next().unwrap_or_default();
                            if !names.iter().any(|n| n == name) {
                                // Our node was deleted: look again.
                                return Flow::Again;
                            }
                            if let Err(e) = self.sorted(names) {
                                tracing::warn!(path = %self.path, "{e}: no longer leader");
                                self.lost(LostReason::AnotherLayout);
                                return Flow::Again;
                            }
                            children = Box::pin(again.changed());
                        }
                        Err(_) => {
                            // Not known to be gone: the session may live.
                            self.lost(LostReason::Disconnected);
                            return Flow::Again;
                        }
                    }
                }
                moved = states.changed() => {
                    if moved.is_err() {
                        return Flow::Closed;
                    }
                    match self.registry.state() {
                        // The same session: the node is still ours.
                        State::Connected if shared.holds(epoch) => grace_until = None,
                        // Only a lost connection has a grace: the session
                        // may still be alive. An expired one is not.
                        State::Disconnected if !self.grace.is_zero() => {
                            grace_until.get_or_insert_with(|| Instant::now() + self.grace);
                        }
                        State::Connected | State::Expired => {
                            self.lost(LostReason::SessionEnded);
                            return Flow::Again;
                        }
                        _ => {
                            self.lost(LostReason::Disconnected);
                            return Flow::Again;
                        }
                    }
                }
                () = tokio::time::sleep_until(next_probe) => {
                    next_probe = Instant::now() + every;
                    let sent = Instant::now();
                    if shared.holds(epoch) {
                        let left = (heard + limit).saturating_duration_since(sent).min(every);
                        let probe = tokio::time::timeout(left, shared.call("exists", node, client.check_stat(node))).await;
                        match probe {
                            Ok(Ok(Some(_))) => {
                                heard = sent;
                                self.expiry.heard(heard, timeout);
                            }
                            Ok(Ok(None)) => return Flow::Again,
                            _ => {}
                        }
                    }
                    if heard.elapsed() > limit {
                        tracing::warn!(path = %self.path, "the server has not answered for {:?}: no longer leader", heard.elapsed());
                        self.lost(LostReason::Silent);
                        return Flow::Again;
                    }
                }
            }
        }
    }

    /// Deletes our node while its session lives, so the next contender
    /// leads at once (else it goes with the session).
    pub(super) async fn withdraw(&mut self) {
        self.node = None;
        let shared = self.registry.shared.clone();
        // Every node with our prefix: also one whose create's answer was
        // lost, or was sent by a join dropped meanwhile.
        for attempt in 0..RESIGN_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200) * attempt).await;
            }
            if self.registry.state() == State::Closed {
                return;
            }
            let Ok(lease) = shared.lease(Instant::now() + shared.op_timeout()).await else { continue };
            let client = lease.client.clone();
            drop(lease);
            let children =
                match shared.call("get_children", &self.path, client.list_children(&self.path)).await {
                    Ok(children) => children,
                    Err(e) if e.is_no_node() => return,
                    Err(_) => continue,
                };
            let mut done = true;
            for child in children.iter().filter(|c| c.starts_with(&self.prefix)) {
                let node = format!("{}/{child}", self.path);
                match shared.call("delete", &node, client.delete(&node, None)).await {
                    Ok(()) => {}
                    Err(e) if e.is_no_node() => {}
                    Err(_) => done = false,
                }
            }
            if done {
                return;
            }
        }
        tracing::warn!(path = %self.path, "could not leave the election; the node goes with the session");
    }
}
