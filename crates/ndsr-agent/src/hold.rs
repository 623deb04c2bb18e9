//! Holding a registration while a health check passes: the loop behind
//! `ndsr register` and the agent's registrations. The agent's also follow
//! a maintenance mark: the node is registered (and kept) marked not
//! serving in its own format while one is asked for.

use std::future::Future;
use std::time::Duration;

use ndsr::discovery::{detect, mark, Announcement, Format, ServerSetStatus};
use ndsr::{Data, Object};
use tokio::sync::watch;

use crate::check::{Check, Health};
use crate::drain::mark_held;

/// What is held: a node of ndsr's own format, or an instance in another
/// system's format.
pub enum Target {
    /// An nd_service_registry node at `path` with `data`.
    Node {
        /// The node's path.
        path: String,
        /// Its data.
        data: ndsr::Data,
    },
    /// An instance in another format.
    Announce(Announcement),
}

impl Target {
    /// Registers it; returns the node's path.
    async fn register(&self, registry: &ndsr::Registry) -> ndsr::Result<String> {
        match self {
            Target::Node { path, data } => registry.set_node(path, data.clone()).await.map(|()| path.clone()),
            Target::Announce(announcement) => announcement.register(registry).await,
        }
    }

    /// The node's path before it is registered, when its name is fixed.
    pub fn known_path(&self) -> Option<String> {
        match self {
            Target::Node { path, .. } => Some(path.clone()),
            Target::Announce(announcement) => announcement.known_path(),
        }
    }

    /// The format its node is marked in: an announcement's own; a node's,
    /// the one its data (with `pid` and `created`, as written) looks like,
    /// nd if it says none (as [`mark_held`] detects it from the node).
    pub fn mark_format(&self) -> Format {
        match self {
            Target::Node { path, data } => {
                let mut written = node_object(data);
                for default in ["pid", "created"] {
                    written.entry(default).or_insert(serde_json::Value::from(0));
                }
                let name = ndsr::path::name(path);
                detect([(name, &written)]).unwrap_or(Format::Nd)
            }
            Target::Announce(announcement) => announcement.format(),
        }
    }

    /// What is registered instead while in maintenance: the same node
    /// marked not serving in its format (`reason` where the format has
    /// room for one); `None` when the format has no such mark (nerve: the
    /// node is withdrawn instead).
    pub fn marked(&self, reason: Option<&str>) -> Option<Target> {
        match self {
            Target::Node { path, data } => {
                let marked = mark(self.mark_format(), &node_object(data), true, reason).ok()?;
                Some(Target::Node { path: path.clone(), data: Data::Object(marked) })
            }
            Target::Announce(announcement) => {
                let mut marked = announcement.clone();
                match &mut marked {
                    Announcement::Curator { instance, .. } => instance.enabled = false,
                    Announcement::ServerSet { member, .. } => member.status = ServerSetStatus::Stopping,
                    _ => return None,
                }
                Some(Target::Announce(marked))
            }
        }
    }

    /// Removes the node at `path` now. A sequential node gets a new name
    /// next time, so its path is forgotten too.
    async fn withdraw(&self, registry: &ndsr::Registry, path: &str) -> ndsr::Result<()> {
        registry.unset(path).await?;
        if matches!(self, Target::Announce(a) if a.sequential()) {
            registry.unwatch(path)?;
        }
        Ok(())
    }
}

/// The user's part of a node's data as an object (a string is its
/// `string_value`, as it is written).
fn node_object(data: &Data) -> Object {
    match data {
        Data::None => Object::new(),
        Data::String(s) => {
            Object::from_iter([("string_value".to_string(), serde_json::Value::from(s.as_str()))])
        }
        Data::Object(object) => object.clone(),
    }
}

/// Maintenance asked for a held node: registered (and kept) marked not
/// serving.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Maintenance {
    /// Why (written where the format has room for it: nd's `maintenance`
    /// field).
    pub reason: Option<String>,
}

/// What happened to a held node's maintenance mark.
#[derive(Debug)]
pub enum MarkEvent {
    /// The node at this path now carries this mark (`None`: serving).
    Carries(String, Option<Maintenance>),
    /// Marking the node at this path failed, for this reason (tried again
    /// every second).
    Failed(String, String),
    /// In maintenance and its format has no mark (nerve): not registered
    /// (withdrawn if it was) until the maintenance ends.
    Withheld,
    /// Withheld, and now withdrawn from rotation by its check too, for
    /// this reason: registered again only once the check passes (and the
    /// maintenance has ended).
    WithheldUnhealthy(String),
}

/// A health check and its hysteresis.
#[derive(Clone, Debug, PartialEq)]
pub struct Checked {
    /// The check.
    pub check: Check,
    /// Time between checks (each must finish within it).
    pub interval: Duration,
    /// Successes in a row before the node is registered.
    pub rise: u32,
    /// Failures in a row before it is withdrawn.
    pub fall: u32,
}

/// What happened to a held registration.
#[derive(Debug)]
pub enum Event {
    /// The node was registered (or is kept as desired, to appear once
    /// ZooKeeper answers) at this path.
    Registered(String),
    /// Registering the node at this path failed. Unless `on` returns an
    /// error, the registration is kept as desired (the registry keeps trying).
    RegisterFailed(String, ndsr::Error),
    /// The check started failing (the node stays until `fall` failures).
    Failing(String),
    /// The check passes again.
    Passing,
    /// The node at this path was withdrawn after `fall` failures, for this reason.
    Withdrawn(String, String),
    /// Withdrawing failed (the node goes with the session).
    WithdrawFailed(String, String),
}

/// How long a registration whose write failed waits before asking again
/// (without a check; with one, it asks at each check). Also how long a
/// mark that failed waits.
const RETRY: Duration = Duration::from_secs(1);

/// What to do with the node when a hold ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// Remove it now, not after the session timeout.
    Withdraw,
    /// Leave it in place for a new hold of the same path to take over
    /// (`inherited`), so that changing a registration never flaps it.
    Keep,
}

/// A hold in progress: the node held now, and what it carries.
struct Holding<'a, F, G> {
    registry: &'a ndsr::Registry,
    target: &'a Target,
    on: F,
    on_mark: G,
    /// The node held now, if any.
    registered: Option<String>,
    /// Whether ZooKeeper confirmed it (a write that failed is kept as
    /// desired by the registry, and tried again here until it is
    /// confirmed).
    confirmed: bool,
    /// The mark the node held now carries (`None`: serving).
    carries: Option<Maintenance>,
    /// Not registered because it is in maintenance and its format has no
    /// mark (nerve).
    withheld: bool,
    /// A write of a node with no known path (sequential) failed: it is
    /// owed, and asked again every [`RETRY`] until one succeeds (while the
    /// check passes and it is not withheld).
    owed: bool,
}

impl<F, G, E> Holding<'_, F, G>
where
    F: FnMut(Event) -> Result<(), E>,
    G: FnMut(MarkEvent),
{
    /// One attempt to register the target, marked as `wanted` says:
    /// `Registered` once it holds. On a failure, `RegisterFailed`; unless
    /// `on` refuses, a node with a known path stays registered as desired
    /// (the registry keeps trying), not confirmed. In maintenance, a
    /// target with no mark is withheld instead.
    async fn attempt(&mut self, wanted: Option<Maintenance>) -> Result<(), E> {
        let marked = match &wanted {
            None => None,
            Some(m) => match self.target.marked(m.reason.as_deref()) {
                Some(marked) => Some(marked),
                None => return self.withhold().await,
            },
        };
        self.withheld = false;
        let target = marked.as_ref().unwrap_or(self.target);
        match target.register(self.registry).await {
            Ok(path) => {
                self.owed = false;
                self.registered = Some(path.clone());
                self.confirmed = true;
                self.carry(&path, wanted);
                (self.on)(Event::Registered(path))
            }
            Err(e) => {
                let known = target.known_path();
                // Asked again every RETRY: nothing keeps it desired.
                self.owed = known.is_none();
                (self.on)(Event::RegisterFailed(known.clone().unwrap_or_default(), e))?;
                self.registered = known;
                self.confirmed = false;
                if let Some(path) = &self.registered {
                    // Desired so: the registry writes it so when it can.
                    self.carry(&path.clone(), wanted);
                }
                Ok(())
            }
        }
    }

    /// Records the mark the node carries, said when it changed.
    fn carry(&mut self, path: &str, mark: Option<Maintenance>) {
        if self.carries != mark {
            self.carries = mark.clone();
            (self.on_mark)(MarkEvent::Carries(path.to_string(), mark));
        }
    }

    /// In maintenance with no mark: the node held (if any) is withdrawn.
    async fn withhold(&mut self) -> Result<(), E> {
        if let Some(path) = self.registered.clone() {
            // Kept in `registered` until it is gone: a hold stopped
            // meanwhile still removes it.
            if let Err(e) = self.target.withdraw(self.registry, &path).await {
                return (self.on)(Event::WithdrawFailed(path, e.to_string()));
            }
        }
        self.registered = None;
        self.confirmed = false;
        self.carries = None;
        self.owed = false;
        if !self.withheld {
            self.withheld = true;
            (self.on_mark)(MarkEvent::Withheld);
        }
        Ok(())
    }

    /// The mark asked for is now `wanted`: the node held is marked (or
    /// unmarked) in place, or withdrawn (no mark), or registered again (a
    /// withheld node whose maintenance ended, when `up`). A node not held
    /// now is written with the mark when it is registered.
    async fn remark(&mut self, wanted: Option<Maintenance>, up: bool) -> Result<(), E> {
        match (self.registered.clone(), self.confirmed) {
            (Some(path), true) if self.carries != wanted => {
                if self.target.marked(None).is_none() {
                    return match wanted {
                        Some(_) => self.withhold().await,
                        None => Ok(()),
                    };
                }
                let format = Some(self.target.mark_format());
                let reason = wanted.as_ref().and_then(|m| m.reason.as_deref());
                match mark_held(self.registry, format, &path, wanted.is_some(), reason).await {
                    Ok(_) => self.carry(&path, wanted),
                    Err(e) => (self.on_mark)(MarkEvent::Failed(path, e.to_string())),
                }
                Ok(())
            }
            (None, _) if self.withheld && wanted.is_none() && up => self.attempt(None).await,
            // Owed (its write failed) and now in maintenance with no mark:
            // withheld until the maintenance ends.
            (None, _) if self.owed && wanted.is_some() && self.target.marked(None).is_none() => {
                self.withhold().await
            }
            _ => Ok(()),
        }
    }

    /// The hold stops during a write: a cancelled write stays desired by
    /// the registry (the node may still be made), so it is withdrawn too.
    fn stopped(&mut self) {
        self.registered = self.registered.take().or_else(|| self.target.known_path());
    }
}

/// Holds `target` until `stop` completes: at once without a check, else
/// while the check passes (registered after `rise` successes, withdrawn
/// after `fall` failures). Then removes the node at once, unless `stop`
/// says [`Release::Keep`]: the path of the node held then is returned.
/// A write in progress when `stop` completes is dropped, and its node
/// removed by its path, unless that path is not known before the write (a
/// sequential node: ServerSet, nerve): then the write finishes (within the
/// registry's operation deadline) first, so that no node it made is left
/// behind.
///
/// `inherited`: an earlier hold of the same node kept it in place; it is
/// written again at once (new data replaces old in place) and, with a
/// check, counts as healthy until `fall` failures.
///
/// `on` hears every event; an error from it ends the hold (a node
/// registered before is still removed).
pub async fn hold<E>(
    registry: &ndsr::Registry,
    target: &Target,
    checked: Option<&Checked>,
    inherited: bool,
    stop: impl Future<Output = Release>,
    on: impl FnMut(Event) -> Result<(), E>,
) -> Result<Option<String>, E> {
    // Never in maintenance: the sender lives as long as the hold.
    let (_never, marks) = watch::channel(());
    hold_marked(registry, target, checked, inherited, marks, |()| None, stop, on, |_| {}).await
}

/// [`hold`], following a maintenance mark: `mark_of` of `marks`' value is
/// the mark asked for now (`None`: serving). While one is asked for, the
/// node is registered marked not serving in its own format
/// ([`Target::marked`]), each time it is registered (a check that
/// returns, a write tried again); a node held when the mark changes is
/// marked or unmarked in place; a target with no mark (nerve) is withdrawn
/// and registered again when the mark goes. `on_mark` hears what the node
/// carries.
#[allow(clippy::too_many_arguments)]
pub async fn hold_marked<T, E>(
    registry: &ndsr::Registry,
    target: &Target,
    checked: Option<&Checked>,
    inherited: bool,
    mut marks: watch::Receiver<T>,
    mark_of: impl Fn(&T) -> Option<Maintenance>,
    stop: impl Future<Output = Release>,
    on: impl FnMut(Event) -> Result<(), E>,
    on_mark: impl FnMut(MarkEvent),
) -> Result<Option<String>, E> {
    tokio::pin!(stop);
    let mut h = Holding {
        registry,
        target,
        on,
        on_mark,
        registered: None,
        confirmed: false,
        carries: None,
        withheld: false,
        owed: false,
    };
    let mut release = Release::Withdraw;
    let result: Result<(), E> = async {
        // Each write of a node with a known path races the stop (a write
        // cancelled is withdrawn by that path). A sequential node's is not
        // raced: one made before a cancellation would stay registered,
        // owned by no one. It finishes (within the registry's operation
        // deadline), then a stop that came meanwhile is honoured, and what
        // was made withdrawn.
        let known = target.known_path().is_some();
        macro_rules! or_stop {
            ($doing:expr) => {
                if known {
                    tokio::select! {
                        done = $doing => done?,
                        how = &mut stop => {
                            h.stopped();
                            release = how;
                            return Ok(());
                        }
                    }
                } else {
                    let done = $doing.await;
                    if let Some(how) = futures::FutureExt::now_or_never(&mut stop) {
                        release = how;
                        return done;
                    }
                    done?
                }
            };
        }
        let mut health = checked.map(|c| Health::new(c.rise, c.fall));
        let mut ticks = checked.map(|c| {
            let mut ticks = tokio::time::interval(c.interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks
        });
        // Whether the last check passed: a change is worth an event.
        let mut passing: Option<bool> = None;
        let mut marks_open = true;
        // When a retry is due: kept across the loop's turns, so that
        // checks more often than RETRY never put it off.
        let mut retry_at: Option<tokio::time::Instant> = None;
        if checked.is_none() || inherited {
            health = health.map(Health::already_up);
            let wanted = mark_of(&marks.borrow_and_update());
            or_stop!(h.attempt(wanted));
        }
        loop {
            let up = health.as_ref().is_none_or(Health::is_up);
            let wanted = mark_of(&marks.borrow());
            // A write to ask again (without a check; with one, at each
            // check), a mark that failed, or a sequential node's write that
            // failed (nothing keeps it desired) while it may be registered.
            let retry = (h.registered.is_some()
                && ((checked.is_none() && !h.confirmed) || (h.confirmed && h.carries != wanted)))
                || (h.owed && up && (wanted.is_none() || target.marked(None).is_some()));
            retry_at = match retry_at {
                _ if !retry => None,
                Some(at) => Some(at),
                None => Some(tokio::time::Instant::now() + RETRY),
            };
            let retry_due = async {
                match retry_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let tick = async {
                match ticks.as_mut() {
                    Some(ticks) => {
                        ticks.tick().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                how = &mut stop => {
                    release = how;
                    return Ok(());
                }
                changed = marks.changed(), if marks_open => {
                    // Its sender gone, the mark stays as it is.
                    marks_open = changed.is_ok();
                    let wanted = mark_of(&marks.borrow_and_update());
                    or_stop!(h.remark(wanted, up));
                    continue;
                }
                () = retry_due => {
                    retry_at = None;
                    if h.confirmed {
                        or_stop!(h.remark(wanted, up));
                    } else {
                        or_stop!(h.attempt(wanted));
                    }
                    continue;
                }
                () = tick => {}
            }
            // A check is due (only with one: without, `tick` never is).
            let (Some(checked), Some(health)) = (checked, health.as_mut()) else { continue };
            let result = checked.check.run(checked.interval).await;
            match (&result, passing) {
                (Err(why), Some(true) | None) => (h.on)(Event::Failing(why.clone()))?,
                (Ok(()), Some(false)) => (h.on)(Event::Passing)?,
                _ => {}
            }
            passing = Some(result.is_ok());
            let wanted = mark_of(&marks.borrow());
            match health.observe(result.is_ok()) {
                Some(true) if h.registered.is_none() => or_stop!(h.attempt(wanted)),
                Some(false) => {
                    let why = result.err().unwrap_or_default();
                    h.owed = false;
                    if std::mem::take(&mut h.withheld) {
                        (h.on_mark)(MarkEvent::WithheldUnhealthy(why.clone()));
                    }
                    if let Some(path) = h.registered.take() {
                        h.confirmed = false;
                        match target.withdraw(registry, &path).await {
                            Ok(()) => {
                                h.carries = None;
                                (h.on)(Event::Withdrawn(path, why))?
                            }
                            Err(e) => {
                                h.registered = Some(path.clone());
                                (h.on)(Event::WithdrawFailed(path, e.to_string()))?;
                            }
                        }
                    }
                }
                // Healthy, kept as desired but not confirmed: ask again.
                _ if health.is_up() && h.registered.is_some() && !h.confirmed => or_stop!(h.attempt(wanted)),
                _ => {}
            }
        }
    }
    .await;
    // Remove the node now, not after the session timeout.
    if release == Release::Withdraw {
        if let Some(path) = h.registered.take() {
            if let Err(e) = target.withdraw(registry, &path).await {
                let _ = (h.on)(Event::WithdrawFailed(path, e.to_string()));
            }
        }
    }
    result.map(|()| h.registered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndsr::discovery::{CuratorInstance, NerveInstance, ServerSetMember};

    fn node(path: &str, data: serde_json::Value) -> Target {
        Target::Node { path: path.into(), data: Data::from(data) }
    }

    fn data_of(target: Option<Target>) -> serde_json::Value {
        match target {
            Some(Target::Node { data: Data::Object(o), .. }) => serde_json::Value::Object(o),
            _ => panic!("not a marked node"),
        }
    }

    #[test]
    fn a_node_is_marked_in_the_format_its_data_has() {
        let nd = node("/s/h:1", serde_json::json!({"zone": "a"}));
        assert_eq!(nd.mark_format(), Format::Nd);
        assert_eq!(
            data_of(nd.marked(Some("deploy"))),
            serde_json::json!({"zone": "a", "maintenance": "deploy"})
        );
        let plain = node("/s/h:1", serde_json::json!("hello"));
        assert_eq!(
            data_of(plain.marked(None)),
            serde_json::json!({"string_value": "hello", "maintenance": true})
        );
        let none = node("/s/h:1", serde_json::Value::Null);
        assert_eq!(data_of(none.marked(None)), serde_json::json!({"maintenance": true}));
        let curator = node("/d/web/i-1", serde_json::json!({"name": "web", "serviceType": "DYNAMIC"}));
        assert_eq!(curator.mark_format(), Format::Curator);
        assert_eq!(data_of(curator.marked(Some("x")))["enabled"], serde_json::json!(false));
        let nerve = node("/n/web_0000000001", serde_json::json!({"host": "h", "port": 1}));
        assert_eq!(nerve.mark_format(), Format::Nerve);
        assert!(nerve.marked(None).is_none(), "nerve has no mark");
    }

    #[test]
    fn an_announcement_is_marked_in_its_format() {
        let curator = Target::Announce(Announcement::Curator {
            base: "/d".into(),
            instance: CuratorInstance::new("web", "i-1", "10.0.0.1", 80),
        });
        let Some(Target::Announce(Announcement::Curator { instance, .. })) = curator.marked(None) else {
            panic!("not curator")
        };
        assert!(!instance.enabled);
        let serverset = Target::Announce(Announcement::ServerSet {
            dir: "/s".into(),
            member: ServerSetMember::new("10.0.0.1", 80),
        });
        let Some(Target::Announce(Announcement::ServerSet { member, .. })) = serverset.marked(None) else {
            panic!("not serverset")
        };
        assert_eq!(member.status, ServerSetStatus::Stopping);
        let nerve = Target::Announce(Announcement::Nerve {
            dir: "/n".into(),
            instance: NerveInstance::new("web", "10.0.0.1", 80),
            path_encoding: false,
        });
        assert!(nerve.marked(None).is_none());
    }
}
