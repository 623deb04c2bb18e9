//! Every release, none skipped: a watch gives the latest value, this gives
//! each release after a version in order, then follows new ones live.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use super::history::HistoryItem;
use crate::subscription::Subscription;
use crate::{Error, Registry, Result};

/// The releases of a configuration path after a version, then live (see
/// [`Registry::releases`]).
pub struct Releases {
    registry: Registry,
    path: String,
    subscription: Subscription,
    /// Items to give, each with the life it starts (for a re-creation).
    pending: VecDeque<(HistoryItem, Option<i64>)>,
    /// The czxid of the newest entry given: entries are recorded in zxid
    /// order, whatever their names (which restart if the history node is
    /// made again).
    position: Option<i64>,
    /// The life of the node (its czxid) the items given are in.
    life: Option<i64>,
    /// The last version covered in that life.
    through: i32,
    /// Tampered entries already said.
    tampered: HashSet<String>,
    since: Option<i32>,
    started: bool,
    /// A change was taken from the subscription and its history not yet
    /// read: read it before waiting again (so a cancelled `next` loses
    /// nothing).
    dirty: bool,
}

impl std::fmt::Debug for Releases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Releases").field("path", &self.path).field("position", &self.position).finish()
    }
}

impl Registry {
    /// The history of `path` after version `since` (all of it for
    /// `None`), oldest first, then each new release as it is written, with
    /// versions written outside ndsr as gaps: a client that was
    /// disconnected during five publishes sees all five, in order. Watches
    /// `path` while it lives.
    ///
    /// # Errors
    /// [`Error::InvalidPath`]; [`Error::Closed`].
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn demo(registry: ndsr::Registry) -> ndsr::Result<()> {
    /// let mut releases = registry.releases("/config/web", Some(41))?;
    /// while let Some(item) = releases.next().await {
    ///     if let ndsr::release::HistoryItem::Release(entry) = item? {
    ///         println!("version {}: {}", entry.version, entry.message);
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn releases(&self, path: &str, since: Option<i32>) -> Result<Releases> {
        let subscription = self.subscribe(path)?;
        Ok(Releases {
            registry: self.clone(),
            path: path.to_string(),
            subscription,
            pending: VecDeque::new(),
            position: None,
            life: None,
            through: since.unwrap_or(-1),
            tampered: HashSet::new(),
            since,
            started: false,
            dirty: true,
        })
    }
}

impl Releases {
    /// The next item: a release, or a gap, a re-creation or a tampered
    /// entry met after the position. `None` once the registry is closed.
    /// Waits through a lost connection.
    ///
    /// # Cancellation safety
    /// Cancel-safe: the position moves only when an item is returned, and
    /// a change seen by a cancelled call is read by the next.
    pub async fn next(&mut self) -> Option<Result<HistoryItem>> {
        let mut delay = Duration::from_millis(50);
        loop {
            if let Some((item, starts)) = self.pending.pop_front() {
                self.advance(&item, starts);
                return Some(Ok(item));
            }
            if !self.dirty {
                // Every release changes the live node: wait for that.
                self.subscription.next().await?;
                self.dirty = true;
            }
            match self.refill().await {
                Ok(()) => {
                    self.started = true;
                    self.dirty = false;
                    delay = Duration::from_millis(50);
                }
                Err(Error::Closed) => return None,
                Err(Error::NoConnection(_)) => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }

    fn advance(&mut self, item: &HistoryItem, starts: Option<i64>) {
        match item {
            HistoryItem::Release(e) => {
                self.position = Some(e.czxid);
                self.life = Some(e.node_czxid);
                self.through = e.version;
            }
            HistoryItem::Gap { to, .. } => self.through = self.through.max(*to),
            HistoryItem::Recreated => {
                self.life = starts;
                self.through = -1;
            }
            HistoryItem::Tampered { name, .. } => {
                self.tampered.insert(name.clone());
            }
        }
    }

    /// Reads the history and queues what lies after the position. Gaps
    /// are clipped to what was not said yet; a re-creation is said once
    /// per life.
    async fn refill(&mut self) -> Result<()> {
        let history = self.registry.history(&self.path).await?;
        if !self.started {
            if let Some(since) = self.since {
                // Start after the newest release at or before `since` in
                // the node's present life.
                let life = history.live_czxid.or_else(|| history.releases().last().map(|e| e.node_czxid));
                let at =
                    history.releases().filter(|e| Some(e.node_czxid) == life && e.version <= since).last();
                self.position = at.map(|e| e.czxid);
                self.life = life;
            }
        }
        let (mut through, mut life) = (self.through, self.life);
        // Is the walk past the position (after the newest entry given)?
        let mut past = self.position.is_none();
        let items: Vec<HistoryItem> = history.items;
        for (i, item) in items.iter().enumerate() {
            match item {
                HistoryItem::Release(e) => {
                    if self.position.is_some_and(|p| e.czxid <= p) {
                        past = self.position == Some(e.czxid);
                        continue;
                    }
                    past = true;
                    through = e.version;
                    life = Some(e.node_czxid);
                    self.pending.push_back((item.clone(), None));
                }
                HistoryItem::Tampered { name, .. } => {
                    if !self.tampered.contains(name) {
                        self.pending.push_back((item.clone(), None));
                    }
                }
                HistoryItem::Gap { from, to, reason } => {
                    if past && *to > through {
                        let from = (*from).max(through + 1);
                        through = *to;
                        self.pending.push_back((HistoryItem::Gap { from, to: *to, reason: *reason }, None));
                    }
                }
                HistoryItem::Recreated => {
                    // The life it starts: the next release's, else the
                    // live node's.
                    let next = items[i + 1..].iter().find_map(|item| match item {
                        HistoryItem::Release(e) => Some(e.node_czxid),
                        _ => None,
                    });
                    let new_life = next.or(history.live_czxid);
                    if past && new_life.is_some() && new_life != life {
                        life = new_life;
                        through = -1;
                        // The handle moves to the new life when it is
                        // given (`advance`), in order with what is queued
                        // before it.
                        self.pending.push_back((item.clone(), new_life));
                    }
                }
            }
        }
        Ok(())
    }
}
