//! Leader election on the node layouts that kazoo and Curator clients
//! already use, so that ndsr joins their elections on the same paths
//! (issue 26; see `docs/COORDINATION.md`).
//!
//! # Layouts
//! - [`ElectionLayout::Kazoo`]: kazoo's `Election` (a `Lock`):
//!   `<path>/<uuid hex>__lock__<10-digit sequence>`.
//! - [`ElectionLayout::CuratorLatch`]: Curator's `LeaderLatch`:
//!   `<path>/_c_<uuid>-latch-<sequence>`.
//! - [`ElectionLayout::CuratorSelector`]: Curator's `LeaderSelector` (and
//!   `InterProcessMutex`): `<path>/_c_<uuid>-lock-<sequence>`.
//!
//! Each contender's node is ephemeral and sequential and holds its id
//! (UTF-8); the lowest sequence leads. A path that holds another layout's
//! contenders is refused ([`Error::LayoutMismatch`]): two layouts in one
//! path sort differently and could elect two leaders.
//!
//! # Leadership is a state
//! [`Election::state`] is [`Leadership::Leader`] only while this
//! contender's node is the lowest, is owned by the registry's live session
//! (made by it, as the create's answer says, or its `ephemeralOwner`
//! checked when found after a lost answer: CURATOR-696's fix), and the
//! server answers. It drops
//! to [`Leadership::Lost`] the moment the connection is lost, and also
//! when the server has not answered for a part of the session timeout
//! (⅔, as locks do: a silent link is noticed before the server can expire
//! the session). After a reconnect the contender checks its node again;
//! after an expiry it joins again with a new node. The token of
//! [`Leadership::Leader`] is the node's czxid: it only grows from one
//! leader of the path to the next (a sequence number would start over with
//! a re-made parent), so a leader passes it to what it writes and a deposed
//! leader's late writes can be refused.

mod run;

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{oneshot, watch};

use crate::{Error, Registry, Result};

/// Which client's node layout an election uses (see the module's docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElectionLayout {
    /// kazoo's `Election` / `Lock`: `<uuid hex>__lock__<seq>`.
    Kazoo,
    /// Curator's `LeaderLatch`: `_c_<uuid>-latch-<seq>`.
    CuratorLatch,
    /// Curator's `LeaderSelector`: `_c_<uuid>-lock-<seq>`.
    CuratorSelector,
}

impl ElectionLayout {
    /// Its name, as errors and the CLI say it: `kazoo`, `curator-latch`,
    /// `curator-selector`.
    pub fn name(self) -> &'static str {
        match self {
            ElectionLayout::Kazoo => "kazoo",
            ElectionLayout::CuratorLatch => "curator-latch",
            ElectionLayout::CuratorSelector => "curator-selector",
        }
    }

    /// The family of lock nodes this layout shares a path with (as
    /// [`crate::lock`] names them): kazoo's `Election` is a `Lock`, whose
    /// readers it ignores; a `LeaderSelector` is an `InterProcessMutex`.
    fn lock_family(self) -> &'static str {
        match self {
            ElectionLayout::Kazoo => "kazoo",
            ElectionLayout::CuratorLatch => "curator-latch",
            ElectionLayout::CuratorSelector => "curator",
        }
    }

    /// The name of a new contender's node before ZooKeeper's sequence.
    fn prefix(self, id: uuid::Uuid) -> String {
        match self {
            ElectionLayout::Kazoo => format!("{}__lock__", id.simple()),
            ElectionLayout::CuratorLatch => format!("_c_{}-latch-", id.hyphenated()),
            ElectionLayout::CuratorSelector => format!("_c_{}-lock-", id.hyphenated()),
        }
    }

    /// The layout of a child's name and its sequence number, if it is a
    /// contender of one of the three.
    pub fn of_node(name: &str) -> Option<(ElectionLayout, i64)> {
        // Ten digits, after a '-' once ZooKeeper's counter wrapped past 2^31
        // (kazoo's `-?\d{10}`).
        let sequence = |digits: &str| -> Option<i64> {
            let body = digits.strip_prefix('-').unwrap_or(digits);
            (body.len() == 10 && body.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok())?
        };
        if let Some(rest) = name.strip_prefix("_c_") {
            // A protected name: a 36-character UUID, then '-'.
            let tail = rest.get(37..).filter(|_| rest.as_bytes().get(36) == Some(&b'-'))?;
            if let Some(digits) = tail.strip_prefix("latch-") {
                return Some((ElectionLayout::CuratorLatch, sequence(digits)?));
            }
            if let Some(digits) = tail.strip_prefix("lock-") {
                return Some((ElectionLayout::CuratorSelector, sequence(digits)?));
            }
            return None;
        }
        let (head, digits) = name.rsplit_once("__lock__")?;
        (head.len() == 32 && head.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Some((ElectionLayout::Kazoo, sequence(digits)?)))?
    }
}

impl std::str::FromStr for ElectionLayout {
    type Err = Error;

    /// Its [`name`](ElectionLayout::name).
    fn from_str(name: &str) -> Result<ElectionLayout> {
        [ElectionLayout::Kazoo, ElectionLayout::CuratorLatch, ElectionLayout::CuratorSelector]
            .into_iter()
            .find(|l| l.name() == name)
            .ok_or(Error::InvalidArgument("an election layout is kazoo, curator-latch or curator-selector"))
    }
}

impl std::fmt::Display for ElectionLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a contender stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leadership {
    /// Making its node (at the start, or again after an expiry): not
    /// leader.
    Joining,
    /// This contender leads. `token` is its node's czxid (the zxid of its
    /// creation), which grows from one leader of the path to the next, even
    /// across a re-made parent: pass it to what the leader writes (a
    /// fencing token).
    Leader {
        /// The fencing token.
        token: i64,
    },
    /// Another contender leads; `position` contenders are ahead of this
    /// one (1: next in line).
    Follower {
        /// How many are ahead.
        position: usize,
    },
    /// The connection is lost (or the server does not answer): no longer
    /// leader, whatever the server may still think; it joins again once
    /// connected.
    Lost,
    /// Resigned, or the registry closed: the election is over for it.
    Ended,
}

/// One contender, as [`Election::contenders`] lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contender {
    /// Its node's name.
    pub node: String,
    /// The layout of its node's name.
    pub layout: ElectionLayout,
    /// Its sequence number (the token it leads with).
    pub sequence: i64,
    /// Its id (the node's data, UTF-8).
    pub id: String,
}

/// An election being joined (see [`Registry::election`]).
#[derive(Debug)]
#[must_use = "an election builder does nothing until joined"]
pub struct ElectionBuilder {
    registry: Registry,
    path: String,
    id: String,
    layout: ElectionLayout,
    lost_after: f64,
    grace: Duration,
}

impl Registry {
    /// Joins the election at `path` as `id` (its node's data), in kazoo's
    /// layout unless [`layout`](ElectionBuilder::layout) says otherwise.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn demo(registry: ndsr::Registry) -> ndsr::Result<()> {
    /// use ndsr::election::{ElectionLayout, Leadership};
    /// let election = registry.election("/election/cron", "host1").layout(ElectionLayout::Kazoo).join().await?;
    /// let mut state = election.watch();
    /// loop {
    ///     if let Leadership::Leader { token } = state.borrow_and_update().clone() {
    ///         println!("leading with token {token}");
    ///     }
    ///     if state.changed().await.is_err() { break; }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn election(&self, path: &str, id: &str) -> ElectionBuilder {
        ElectionBuilder {
            registry: self.clone(),
            path: path.to_string(),
            id: id.to_string(),
            layout: ElectionLayout::Kazoo,
            lost_after: crate::lock::DEFAULT_LOST_AFTER,
            grace: Duration::ZERO,
        }
    }
}

impl ElectionBuilder {
    /// The node layout (default kazoo's).
    pub fn layout(mut self, layout: ElectionLayout) -> Self {
        self.layout = layout;
        self
    }

    /// The part of the session timeout after which a leader whose server
    /// does not answer drops to [`Leadership::Lost`] (default ⅔; clamped
    /// to 0.1-0.9).
    pub fn lost_after(mut self, part: f64) -> Self {
        self.lost_after =
            if part.is_finite() { part.clamp(0.1, 0.9) } else { crate::lock::DEFAULT_LOST_AFTER };
        self
    }

    /// How long a leader whose connection is lost stays leader while the
    /// client reconnects (default none: it drops to [`Leadership::Lost`]
    /// at once). The grace never reaches past the silence deadline of
    /// [`lost_after`](Self::lost_after): a leader the server has not
    /// answered for that long steps down whatever the grace, so mutual
    /// exclusion holds. A grace rides out a server restart or a brief
    /// network flap without a change of leader.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Checks the path (no other layout's contenders), makes this
    /// contender's node, and returns once it knows where it stands.
    ///
    /// # Errors
    /// [`Error::InvalidPath`]; [`Error::InvalidArgument`] for an id over
    /// 1 MiB; [`Error::ReadOnly`]; [`Error::LayoutMismatch`] naming the
    /// layout found; [`Error::NoConnection`] when not connected within the
    /// connect timeout; [`Error::NotAuthorized`].
    pub async fn join(self) -> Result<Election> {
        crate::path::validate_path(&self.path)?;
        if self.path == "/" {
            return Err(Error::InvalidPath {
                path: self.path,
                reason: "an election needs a path of its own",
            });
        }
        self.registry.check_writable("election")?;
        if self.id.len() > 1 << 20 {
            return Err(Error::InvalidArgument("an election id is at most 1 MiB"));
        }
        let (tx, rx) = watch::channel(Leadership::Joining);
        let (stop, stopped) = oneshot::channel();
        let (done_tx, done) = oneshot::channel();
        let expiry = SessionExpiry::default();
        let mut contender = run::Contender::new(&self, tx, expiry.clone());
        // The first node is made by the task, which answers here: a join
        // dropped meanwhile drops `stop`, and the task withdraws whatever
        // it made.
        let (first_tx, first) = oneshot::channel();
        let registry = self.registry.clone();
        registry.shared.tasks.spawn(async move {
            let made = contender.first().await;
            let failed = made.is_err();
            let _ = first_tx.send(made);
            if failed {
                contender.withdraw().await;
            } else {
                contender.run(stopped).await;
            }
            let _ = done_tx.send(());
        });
        first.await.map_err(|_| Error::Closed)??;
        let mut state = rx.clone();
        let _ =
            tokio::time::timeout(Duration::from_secs(5), state.wait_for(|s| *s != Leadership::Joining)).await;
        Ok(Election {
            expiry,
            registry: self.registry,
            path: self.path,
            id: self.id,
            layout: self.layout,
            rx,
            stop: Some(stop),
            done: Some(done),
        })
    }
}

/// A contender in an election (see [`Registry::election`]). Dropping it
/// resigns in the background.
#[derive(Debug)]
pub struct Election {
    registry: Registry,
    path: String,
    id: String,
    layout: ElectionLayout,
    rx: watch::Receiver<Leadership>,
    stop: Option<oneshot::Sender<()>>,
    done: Option<oneshot::Receiver<()>>,
    expiry: SessionExpiry,
}

/// Why a leader stopped leading (see [`Election::lost_reason`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LostReason {
    /// The connection was lost (beyond the grace, if any): the session may
    /// still be alive, and no other contender can lead before it expires.
    Disconnected,
    /// The server did not answer for `lost_after` of the session timeout:
    /// the same, on a silent link.
    Silent,
    /// The session ended (expired, or replaced by a new one): another
    /// contender may lead already.
    SessionEnded,
    /// Another layout's contender arrived on the path: its client may
    /// consider itself leader already.
    AnotherLayout,
    /// This contender's node changed or was deleted (by another client):
    /// another contender may lead already.
    NodeGone,
}

impl LostReason {
    /// May another contender lead already (so what ran under the
    /// leadership must stop at once, not by the session's deadline)?
    pub fn another_may_lead(self) -> bool {
        matches!(self, LostReason::SessionEnded | LostReason::AnotherLayout | LostReason::NodeGone)
    }
}

/// What the contender task tells the `Election` beside its state: when the
/// server may expire the session, as the leader last knew it, and why it
/// last stopped leading.
#[derive(Debug, Clone, Default)]
pub(crate) struct SessionExpiry(
    std::sync::Arc<std::sync::Mutex<(Option<tokio::time::Instant>, Option<LostReason>)>>,
);

impl SessionExpiry {
    /// The server answered a request sent at `sent`; it holds the session
    /// for `timeout` (negotiated) after that.
    pub(crate) fn heard(&self, sent: tokio::time::Instant, timeout: Duration) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).0 = Some(sent + timeout);
    }

    pub(crate) fn lost(&self, reason: LostReason) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).1 = Some(reason);
    }

    fn get(&self) -> Option<std::time::Instant> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).0.map(tokio::time::Instant::into_std)
    }

    fn reason(&self) -> Option<LostReason> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).1
    }
}

impl Election {
    /// Where this contender stands now.
    pub fn state(&self) -> Leadership {
        self.rx.borrow().clone()
    }

    /// Its state as it changes (a `watch`: the latest is kept). The state
    /// now counts as seen: `changed()` waits for the next change.
    pub fn watch(&self) -> watch::Receiver<Leadership> {
        let mut rx = self.rx.clone();
        rx.mark_unchanged();
        rx
    }

    /// Does this contender lead now?
    pub fn is_leader(&self) -> bool {
        matches!(*self.rx.borrow(), Leadership::Leader { .. })
    }

    /// The election's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// This contender's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its layout.
    pub fn layout(&self) -> ElectionLayout {
        self.layout
    }

    /// The contenders of the path in this layout, in order: the first
    /// leads.
    ///
    /// # Errors
    /// [`Error::NoConnection`], or another ZooKeeper error.
    pub async fn contenders(&self) -> Result<Vec<Contender>> {
        contenders(&self.registry, &self.path, self.layout).await
    }

    /// The earliest moment the server may expire the session this
    /// contender last led in, and let another contender lead: the last
    /// request the server answered while it led, plus the negotiated
    /// session timeout. What ran under the leadership must have stopped by
    /// then (`ndsr elect` kills its command before it). `None` before it
    /// first leads.
    pub fn session_deadline(&self) -> Option<std::time::Instant> {
        self.expiry.get()
    }

    /// Why this contender last stopped leading; `None` if it never did.
    /// With [`LostReason::another_may_lead`], what ran under the leadership
    /// must stop at once.
    pub fn lost_reason(&self) -> Option<LostReason> {
        self.expiry.reason()
    }

    /// The contender that leads the path now, as ZooKeeper has it (the
    /// first of [`contenders`](Self::contenders)); `None` when there is
    /// none. This is ZooKeeper's view: a leader cut off from the server may
    /// not know yet that it has lost, so a leader acts on its own
    /// [`state`](Self::state) and fences its writes with its token.
    ///
    /// # Errors
    /// As [`contenders`](Self::contenders).
    pub async fn leader(&self) -> Result<Option<Contender>> {
        Ok(self.contenders().await?.into_iter().next())
    }

    /// Leaves the election: its node is deleted (while the session lives)
    /// and its state ends as [`Leadership::Ended`]. Returns once done.
    pub async fn resign(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = self.done.take() {
            let _ = done.await;
        }
    }
}

impl Drop for Election {
    fn drop(&mut self) {
        // The task sees the stop sender dropped and resigns.
        self.stop.take();
    }
}

/// The contenders of `path` in `layout`, in order (see
/// [`Election::contenders`]); also for a path this process does not
/// contend in. Another layout's contenders are left out.
///
/// # Errors
/// [`Error::NoConnection`], or another ZooKeeper error.
pub async fn contenders(registry: &Registry, path: &str, layout: ElectionLayout) -> Result<Vec<Contender>> {
    let mut all = read_contenders(registry, path).await?;
    all.retain(|c| c.layout == layout);
    Ok(all)
}

/// What a path holds, in whatever layout: see [`status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionStatus {
    /// The layouts of the contenders found, in the order first seen
    /// (usually one; none for an empty or missing path; more than one is a
    /// path no client should join).
    pub layouts: Vec<ElectionLayout>,
    /// Every contender, by sequence.
    pub contenders: Vec<Contender>,
}

impl ElectionStatus {
    /// The leader by ZooKeeper's record: the first contender, when the path
    /// holds a single layout (with two, their clients disagree on who
    /// leads, and this is `None`).
    pub fn leader(&self) -> Option<&Contender> {
        if self.layouts.len() == 1 {
            self.contenders.first()
        } else {
            None
        }
    }
}

/// The contenders of `path` in any layout, and the layouts found (for
/// `ndsr elect --status` and the agent, which watch elections they do not
/// join).
///
/// # Errors
/// [`Error::InvalidPath`]; [`Error::NoConnection`], or another ZooKeeper
/// error.
pub async fn status(registry: &Registry, path: &str) -> Result<ElectionStatus> {
    let contenders = read_contenders(registry, path).await?;
    let mut layouts = Vec::new();
    for c in &contenders {
        if !layouts.contains(&c.layout) {
            layouts.push(c.layout);
        }
    }
    Ok(ElectionStatus { layouts, contenders })
}

/// Every contender of `path` in any layout, by sequence, with its id.
async fn read_contenders(registry: &Registry, path: &str) -> Result<Vec<Contender>> {
    crate::path::validate_path(path)?;
    let shared = &registry.shared;
    let client = shared.lease(registry.deadline()).await?.client;
    let children = match shared.call("get_children", path, client.list_children(path)).await {
        Ok(children) => children,
        Err(e) if e.is_no_node() => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found: Vec<(i64, ElectionLayout, String)> = children
        .into_iter()
        .filter_map(|c| ElectionLayout::of_node(&c).map(|(layout, seq)| (seq, layout, c)))
        .collect();
    found.sort_by(|a, b| (a.0, &a.2).cmp(&(b.0, &b.2)));
    let base = path.trim_end_matches('/');
    // At most 32 reads in flight, whatever the number of contenders.
    // Each read owns what it uses (a stream of borrowing futures would not
    // be Send for callers that need it, as the agent's streams).
    let nodes: Vec<String> = found.iter().map(|(_, _, name)| format!("{base}/{name}")).collect();
    let reads: Vec<_> = futures::stream::iter(nodes.into_iter().map(|node| {
        let (client, shared) = (client.clone(), shared.clone());
        async move { shared.call("get_data", &node, client.get_data(&node)).await }
    }))
    .buffered(32)
    .collect()
    .await;
    let mut out = Vec::new();
    for ((sequence, layout, node), read) in found.into_iter().zip(reads) {
        match read {
            Ok((bytes, _)) => out.push(Contender {
                node,
                layout,
                sequence,
                id: String::from_utf8_lossy(&bytes).into_owned(),
            }),
            Err(e) if e.is_no_node() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_and_lock_modes_parse_from_their_names() {
        use crate::lock::{LockLayout, LockMode};
        for l in [ElectionLayout::Kazoo, ElectionLayout::CuratorLatch, ElectionLayout::CuratorSelector] {
            assert_eq!(l.name().parse::<ElectionLayout>().unwrap(), l);
        }
        for l in [LockLayout::Semaphore, LockLayout::Kazoo, LockLayout::Curator] {
            assert_eq!(l.name().parse::<LockLayout>().unwrap(), l);
        }
        for m in [LockMode::Exclusive, LockMode::Read, LockMode::Write] {
            assert_eq!(m.name().parse::<LockMode>().unwrap(), m);
        }
        assert!(matches!("zab".parse::<ElectionLayout>(), Err(Error::InvalidArgument(_))));
        assert!(matches!("Kazoo".parse::<LockLayout>(), Err(Error::InvalidArgument(_))));
        assert!(matches!("".parse::<LockMode>(), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn each_layout_is_of_its_lock_family() {
        let id = uuid::Uuid::new_v4();
        for layout in [ElectionLayout::Kazoo, ElectionLayout::CuratorLatch, ElectionLayout::CuratorSelector] {
            let name = format!("{}0000000042", layout.prefix(id));
            assert_eq!(crate::lock::node_family(&name), Some(layout.lock_family()), "{name}");
        }
    }

    #[test]
    fn node_names_are_read_in_each_layout() {
        let id = uuid::Uuid::new_v4();
        for layout in [ElectionLayout::Kazoo, ElectionLayout::CuratorLatch, ElectionLayout::CuratorSelector] {
            let name = format!("{}0000000042", layout.prefix(id));
            assert_eq!(ElectionLayout::of_node(&name), Some((layout, 42)), "{name}");
        }
        assert_eq!(
            ElectionLayout::of_node("_c_8b8a2d6e-8a7e-4b7c-9c5e-3d2f1a0b9c8d-latch-0000000007"),
            Some((ElectionLayout::CuratorLatch, 7))
        );
        assert_eq!(
            ElectionLayout::of_node("0123456789abcdef0123456789abcdef__lock__-2147483648"),
            Some((ElectionLayout::Kazoo, -2147483648)),
            "a wrapped sequence"
        );
        for other in [
            "",
            "x__lock__0000000001",
            "0123456789abcdef0123456789abcdef__rlock__0000000001",
            "_c_short-lock-0000000001",
            "_c_8b8a2d6e-8a7e-4b7c-9c5e-3d2f1a0b9c8d-lock-12",
            "0123456789abcdef0123456789abcdef__lock__00000000x1",
        ] {
            assert_eq!(ElectionLayout::of_node(other), None, "{other:?}");
        }
    }
}
