//! Every release, none skipped: a watch gives the latest value, this gives
//! each release after a version in order, then follows new ones live.

use std::collections::VecDeque;
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
    pending: VecDeque<HistoryItem>,
    /// The newest entry name given (entries are named in the order written).
    position: Option<String>,
    /// The last version covered in the node's present life.
    through: i32,
    since: Option<i32>,
    started: bool,
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
            through: since.unwrap_or(-1),
            since,
            started: false,
        })
    }
}

impl Releases {
    /// The next item: a release, or a gap, a re-creation or a tampered
    /// entry met after the position. `None` once the registry is closed.
    /// Waits through a lost connection.
    ///
    /// # Cancellation safety
    /// Cancel-safe: the position moves only when an item is returned.
    pub async fn next(&mut self) -> Option<Result<HistoryItem>> {
        let mut delay = Duration::from_millis(50);
        loop {
            if let Some(item) = self.pending.pop_front() {
                self.advance(&item);
                return Some(Ok(item));
            }
            if self.started {
                // Every release changes the live node: wait for that.
                self.subscription.next().await?;
            }
            match self.refill().await {
                Ok(()) => {
                    self.started = true;
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

    fn advance(&mut self, item: &HistoryItem) {
        match item {
            HistoryItem::Release(e) => {
                self.position = Some(e.name.clone());
                self.through = e.version;
            }
            HistoryItem::Gap { to, .. } => self.through = self.through.max(*to),
            HistoryItem::Recreated => self.through = -1,
            HistoryItem::Tampered { name, .. } => {
                if self.position.as_ref().is_none_or(|p| name > p) {
                    self.position = Some(name.clone());
                }
            }
        }
    }

    /// Reads the history and queues what lies after the position.
    async fn refill(&mut self) -> Result<()> {
        let history = self.registry.history(&self.path).await?;
        if !self.started {
            if let Some(since) = self.since {
                // Start after the newest release at or before `since` in
                // the node's present life.
                let life = history.releases().last().map(|e| e.node_czxid);
                self.position = history
                    .releases()
                    .filter(|e| Some(e.node_czxid) == life && e.version <= since)
                    .last()
                    .map(|e| e.name.clone());
            }
        }
        let mut through = self.through;
        // Is the walk past the position (after the newest entry given)?
        let mut past = self.position.is_none();
        for item in history.items {
            match &item {
                HistoryItem::Release(e) => {
                    if self.position.as_ref().is_some_and(|p| &e.name <= p) {
                        past = self.position.as_ref() == Some(&e.name);
                        continue;
                    }
                    past = true;
                    through = e.version;
                    self.pending.push_back(item);
                }
                HistoryItem::Tampered { name, .. } => {
                    if self.position.as_ref().is_some_and(|p| name <= p) {
                        continue;
                    }
                    past = true;
                    self.pending.push_back(item);
                }
                HistoryItem::Gap { to, .. } => {
                    if past && *to > through {
                        through = *to;
                        self.pending.push_back(item);
                    }
                }
                HistoryItem::Recreated => {
                    if past {
                        through = -1;
                        self.pending.push_back(item);
                    }
                }
            }
        }
        Ok(())
    }
}
