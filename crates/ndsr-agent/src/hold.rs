//! Holding a registration while a health check passes: the loop behind
//! `ndsr register` and the agent's registrations.

use std::future::Future;
use std::time::Duration;

use crate::check::{Check, Health};
use ndsr::discovery::Announcement;

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
/// (without a check; with one, it asks at each check).
const RETRY: Duration = Duration::from_secs(1);

/// One attempt to register `target`: `Registered` once it holds. On a
/// failure, `RegisterFailed`; unless `on` refuses, a node with a known
/// path stays registered as desired (the registry keeps trying), not
/// confirmed.
async fn attempt<E>(
    registry: &ndsr::Registry,
    target: &Target,
    registered: &mut Option<String>,
    confirmed: &mut bool,
    on: &mut impl FnMut(Event) -> Result<(), E>,
) -> Result<(), E> {
    match target.register(registry).await {
        Ok(path) => {
            *registered = Some(path.clone());
            *confirmed = true;
            on(Event::Registered(path))
        }
        Err(e) => {
            let known = target.known_path();
            on(Event::RegisterFailed(known.clone().unwrap_or_default(), e))?;
            *registered = known;
            *confirmed = false;
            Ok(())
        }
    }
}

/// What to do with the node when a hold ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// Remove it now, not after the session timeout.
    Withdraw,
    /// Leave it in place for a new hold of the same path to take over
    /// (`inherited`), so that changing a registration never flaps it.
    Keep,
}

/// Holds `target` until `stop` completes: at once without a check, else
/// while the check passes (registered after `rise` successes, withdrawn
/// after `fall` failures). Then removes the node at once, unless `stop`
/// says [`Release::Keep`]: the path of the node held then is returned.
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
    mut on: impl FnMut(Event) -> Result<(), E>,
) -> Result<Option<String>, E> {
    tokio::pin!(stop);
    // The node held now, if any, and whether ZooKeeper confirmed it (a
    // write that failed is kept as desired by the registry, and tried
    // again here until it is confirmed).
    let mut registered: Option<String> = None;
    let mut confirmed = false;
    let mut release = Release::Withdraw;
    let result: Result<(), E> = async {
        let Some(checked) = checked else {
            loop {
                tokio::select! {
                    done = attempt(registry, target, &mut registered, &mut confirmed, &mut on) => done?,
                    how = &mut stop => {
                        // A cancelled write stays desired by the registry:
                        // the node may still be made, so it is withdrawn too.
                        registered = registered.take().or_else(|| target.known_path());
                        release = how;
                        return Ok(());
                    }
                }
                // Held, or (a sequential node whose write failed) nothing to try again.
                if confirmed || registered.is_none() {
                    release = stop.await;
                    return Ok(());
                }
                tokio::select! {
                    () = tokio::time::sleep(RETRY) => {}
                    how = &mut stop => {
                        release = how;
                        return Ok(());
                    }
                }
            }
        };
        let mut health = Health::new(checked.rise, checked.fall);
        if inherited {
            health = health.already_up();
            attempt(registry, target, &mut registered, &mut confirmed, &mut on).await?;
        }
        // Whether the last check passed: a change is worth an event.
        let mut passing: Option<bool> = None;
        let mut ticks = tokio::time::interval(checked.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                how = &mut stop => {
                    release = how;
                    return Ok(());
                }
                _ = ticks.tick() => {}
            }
            let result = checked.check.run(checked.interval).await;
            match (&result, passing) {
                (Err(why), Some(true) | None) => on(Event::Failing(why.clone()))?,
                (Ok(()), Some(false)) => on(Event::Passing)?,
                _ => {}
            }
            passing = Some(result.is_ok());
            match health.observe(result.is_ok()) {
                Some(true) if registered.is_none() => {
                    attempt(registry, target, &mut registered, &mut confirmed, &mut on).await?
                }
                Some(false) => {
                    let why = result.err().unwrap_or_default();
                    if let Some(path) = registered.take() {
                        confirmed = false;
                        match target.withdraw(registry, &path).await {
                            Ok(()) => on(Event::Withdrawn(path, why))?,
                            Err(e) => {
                                registered = Some(path.clone());
                                on(Event::WithdrawFailed(path, e.to_string()))?;
                            }
                        }
                    }
                }
                // Healthy, kept as desired but not confirmed: ask again.
                _ if health.is_up() && registered.is_some() && !confirmed => {
                    attempt(registry, target, &mut registered, &mut confirmed, &mut on).await?
                }
                _ => {}
            }
        }
    }
    .await;
    // Remove the node now, not after the session timeout.
    if release == Release::Withdraw {
        if let Some(path) = registered.take() {
            if let Err(e) = target.withdraw(registry, &path).await {
                let _ = on(Event::WithdrawFailed(path, e.to_string()));
            }
        }
    }
    result.map(|()| registered)
}
