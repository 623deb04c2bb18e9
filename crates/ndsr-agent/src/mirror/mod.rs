//! Mirror: a one-way copy of a subtree from one ensemble (SRC) to another
//! (DST), kept converged. `ndsr mirror` and the agent's `[[mirror]]` run it.
//!
//! Each pass reads both trees in full and makes DST equal to SRC under the
//! path: persistent nodes created, updated (exact bytes) and deleted in
//! `multi` batches; with `registrations`, SRC's ephemeral nodes are held
//! on DST as ephemeral nodes of the mirror's own session (the library
//! keeps them through reconnects and expiry). A pass runs at once on a
//! change under SRC (a persistent recursive watch), after a reconnect of
//! either side, and at least every `interval`. Errors are retried with
//! back-off; a mirror never stops on a transient error.
//!
//! Layout: this file (endpoints, options, status, the loop), `pass.rs`
//! (one read-compare-write pass), `agent.rs` (the agent's `[[mirror]]`).

pub(crate) mod agent;
mod pass;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use futures::FutureExt;
use ndsr::registry::raw::{TreeEvent, TreeWatch};
use ndsr::Registry;
use tokio::sync::watch;

pub use pass::Pass;

/// One side of a mirror: `server[,server...][/chroot]:path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The servers with the chroot, if any (`zk1:2181,zk2:2181/app`), as
    /// [`Registry::builder`] takes them.
    pub servers: String,
    /// The subtree's root (under the chroot).
    pub path: String,
}

/// Why an endpoint is not `server[,server...][/chroot]:path`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// No `:/path` after the servers.
    #[error("{0:?} has no path: give SERVERS[/CHROOT]:PATH, e.g. zk1:2181,zk2:2181:/services")]
    NoPath(String),
    /// Nothing before the path.
    #[error("{0:?} has no servers before its path: give SERVERS[/CHROOT]:PATH")]
    NoServers(String),
    /// A server is empty (`zk1:2181,,zk2:2181`).
    #[error("{0:?} has an empty server in its list")]
    EmptyServer(String),
    /// The chroot or the path is not a valid ZooKeeper path.
    #[error("{input:?}: {reason}")]
    BadPath {
        /// The endpoint as given.
        input: String,
        /// What is wrong, and with which path.
        reason: String,
    },
}

impl std::str::FromStr for Endpoint {
    type Err = EndpointError;

    /// Splits at the first `:/`: a port is digits after its colon, so the
    /// first colon followed by `/` starts the path.
    fn from_str(input: &str) -> Result<Endpoint, EndpointError> {
        let Some(at) = input.find(":/") else { return Err(EndpointError::NoPath(input.into())) };
        let (servers, path) = (&input[..at], &input[at + 1..]);
        let (hosts, chroot) = match servers.find('/') {
            Some(slash) => (&servers[..slash], Some(&servers[slash..])),
            None => (servers, None),
        };
        if hosts.trim().is_empty() {
            return Err(EndpointError::NoServers(input.into()));
        }
        if hosts.split(',').any(|h| h.trim().is_empty()) {
            return Err(EndpointError::EmptyServer(input.into()));
        }
        let bad = |what: &str, e: ndsr::Error| EndpointError::BadPath {
            input: input.into(),
            reason: format!("the {what}: {e}"),
        };
        if let Some(chroot) = chroot {
            ndsr::validate_path(chroot).map_err(|e| bad("chroot", e))?;
        }
        ndsr::validate_path(path).map_err(|e| bad("path", e))?;
        Ok(Endpoint { servers: servers.to_string(), path: path.to_string() })
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.servers, self.path)
    }
}

/// How a mirror runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Hold SRC's ephemeral nodes (registrations) on DST as ephemeral
    /// nodes of the mirror's session; otherwise they are left out.
    pub registrations: bool,
    /// A full pass at least this often (changes under SRC start one at
    /// once; without the recursive watch, at most every second).
    pub interval: Duration,
    /// The configuration root (histories, schemas), left out on both
    /// sides unless the mirrored path is inside it; `/zookeeper` too.
    pub config_root: String,
}

impl Default for Options {
    fn default() -> Options {
        Options { registrations: false, interval: Duration::from_secs(10), config_root: "/ndsr".into() }
    }
}

/// How far behind DST is, as of the last pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// Since when SRC has changed and DST was not yet equal, or since the
    /// first try while no pass has completed (`None`: converged).
    pub behind_since: Option<SystemTime>,
    /// The writes of the last plan not yet made (0: converged).
    pub nodes_behind: usize,
    /// Passes completed.
    pub passes: u64,
    /// Nodes mirrored (SRC's, under the path) at the last pass.
    pub nodes: usize,
    /// The last error, until a pass completes.
    pub error: Option<String>,
    /// How long DST had been behind when the last pass that made it equal
    /// ended (`None` before that).
    pub caught_up: Option<Duration>,
}

impl Status {
    /// Seconds since SRC changed and DST was not yet equal (0: converged).
    pub fn lag(&self) -> Duration {
        self.behind_since.map_or(Duration::ZERO, |t| t.elapsed().unwrap_or_default())
    }
}

/// A mirror of `src` (its `src_path`) onto `dst` (its `dst_path`).
pub struct Mirror {
    src: Registry,
    src_path: String,
    dst: Registry,
    dst_path: String,
    options: Options,
    /// The registrations held on DST: relative path to bytes.
    held: BTreeMap<String, Vec<u8>>,
    status: watch::Sender<Status>,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror").field("src", &self.src_path).field("dst", &self.dst_path).finish()
    }
}

/// The first wait after a failed pass, and the longest.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

/// How long changes are gathered before a pass starts.
const DEBOUNCE: Duration = Duration::from_millis(20);

impl Mirror {
    /// A mirror of `src_path` on `src` onto `dst_path` on `dst`. The
    /// registries may be lazy (not connected yet); the mirror writes DST
    /// with `dst`'s ACL and holds registrations in `dst`'s session, so
    /// give each mirror a `dst` of its own.
    pub fn new(src: Registry, src_path: &str, dst: Registry, dst_path: &str, options: Options) -> Mirror {
        Mirror {
            src,
            src_path: src_path.to_string(),
            dst,
            dst_path: dst_path.to_string(),
            options,
            held: BTreeMap::new(),
            status: watch::channel(Status::default()).0,
        }
    }

    /// The status, updated after every pass.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }

    /// One full pass: read both trees, write what differs. Also keeps
    /// [`status`](Self::status).
    ///
    /// # Errors
    /// A read of either tree failed (no connection, not authorized), or a
    /// write failed for lack of a connection; the writes made stay made.
    /// Writes refused for one node (an ACL, a node that keeps children of
    /// another session) are counted in [`Pass::failed`], not errors.
    pub async fn pass(&mut self) -> ndsr::Result<Pass> {
        let started = SystemTime::now();
        let result = self.converge().await;
        self.status.send_modify(|s| match &result {
            Ok(pass) if pass.source_missing => {
                // Nothing is mirrored: not converged, and said so.
                s.passes += 1;
                s.nodes = 0;
                s.error = Some("the source path does not exist: nothing is mirrored".into());
                s.behind_since.get_or_insert(started);
            }
            Ok(pass) => {
                s.passes += 1;
                s.nodes = pass.nodes;
                s.nodes_behind = pass.failed;
                s.error = None;
                if pass.changes() > 0 || pass.failed > 0 {
                    s.behind_since.get_or_insert(started);
                }
                if pass.failed == 0 {
                    if let Some(since) = s.behind_since.take() {
                        s.caught_up = Some(since.elapsed().unwrap_or_default());
                    }
                }
            }
            Err(e) => {
                s.error = Some(e.to_string());
                // Never equal yet: behind since the first try.
                if s.passes == 0 {
                    s.behind_since.get_or_insert(started);
                }
            }
        });
        result
    }

    /// Runs until `shutdown` completes: a pass now, then on every change
    /// under SRC, on a reconnect of either side and at least every
    /// interval; a failed pass is retried with back-off. `on_pass` hears
    /// of every pass (its result and the status after it).
    pub async fn run<F>(mut self, shutdown: impl std::future::Future<Output = ()>, mut on_pass: F)
    where
        F: FnMut(&ndsr::Result<Pass>, &Status),
    {
        tokio::pin!(shutdown);
        let mut src_states = self.src.state_changes();
        let mut dst_states = self.dst.state_changes();
        let mut tree: Option<TreeWatch> = None;
        // Whether the servers know persistent watches (3.6+).
        let mut watchable = true;
        let mut backoff = BACKOFF.0;
        loop {
            if tree.is_none() && watchable && self.src.state() == ndsr::State::Connected {
                match self.src.watch_tree(&self.src_path).await {
                    Ok(watch) => tree = Some(watch),
                    Err(ndsr::Error::ZooKeeper { source, .. }) => {
                        tracing::warn!(path = %self.src_path, error = %source,
                            "the source refuses a recursive watch; comparing every second instead");
                        watchable = false;
                    }
                    Err(_) => {} // not connected: set at the next pass
                }
            }
            // Shutdown does not wait for a pass (one waiting for a side
            // that is down waits up to the connect timeout).
            let result = tokio::select! {
                result = self.pass() => result,
                () = &mut shutdown => return,
            };
            let wait = match &result {
                Ok(_) => {
                    backoff = BACKOFF.0;
                    if tree.is_some() {
                        self.options.interval
                    } else {
                        self.options.interval.min(Duration::from_secs(1))
                    }
                }
                Err(e) => {
                    // `on_pass` says it to people (once per outage).
                    tracing::debug!(src = %self.src_path, dst = %self.dst_path, error = %e, "mirror pass failed; retrying");
                    let wait = backoff;
                    backoff = (backoff * 2).min(BACKOFF.1);
                    wait
                }
            };
            on_pass(&result, &self.status.borrow());
            // Changes queued during the pass start the next one at once.
            let mut pending = false;
            if let Some(watch) = tree.as_mut() {
                while let Some(event) = watch.next().now_or_never() {
                    match event {
                        TreeEvent::Changed(_) => pending = true,
                        TreeEvent::Reconnected => {}
                        TreeEvent::Ended => {
                            tree = None;
                            break;
                        }
                    }
                }
            }
            if pending {
                self.mark_behind();
                if result.is_ok() {
                    continue;
                }
            }
            let tick = tokio::time::sleep(wait);
            tokio::pin!(tick);
            loop {
                let event = async {
                    match tree.as_mut() {
                        Some(watch) => watch.next().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = &mut shutdown => return,
                    () = &mut tick => break,
                    event = event => match event {
                        TreeEvent::Changed(_) => {
                            self.mark_behind();
                            tokio::time::sleep(DEBOUNCE).await;
                            break;
                        }
                        TreeEvent::Reconnected => {}
                        TreeEvent::Ended => tree = None,
                    },
                    changed = src_states.changed() => {
                        if changed.is_err() { return }
                        if *src_states.borrow_and_update() == ndsr::State::Connected { break }
                    }
                    changed = dst_states.changed() => {
                        if changed.is_err() { return }
                        if *dst_states.borrow_and_update() == ndsr::State::Connected { break }
                    }
                }
            }
        }
    }

    /// Notes that SRC changed (if DST was converged, it is behind from now).
    fn mark_behind(&self) {
        self.status.send_modify(|s| {
            s.behind_since.get_or_insert_with(SystemTime::now);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        let e: Endpoint = "zk1:2181,zk2:2181/app:/services/web".parse().unwrap();
        assert_eq!(e, Endpoint { servers: "zk1:2181,zk2:2181/app".into(), path: "/services/web".into() });
        let e: Endpoint = "localhost:/".parse().unwrap();
        assert_eq!(e, Endpoint { servers: "localhost".into(), path: "/".into() });
        let e: Endpoint = "[::1]:2181:/a".parse().unwrap();
        assert_eq!(e.servers, "[::1]:2181");
        assert_eq!(e.to_string(), "[::1]:2181:/a");
    }

    #[test]
    fn bad_endpoints_say_what_is_wrong() {
        assert_eq!("zk1:2181/app".parse::<Endpoint>(), Err(EndpointError::NoPath("zk1:2181/app".into())));
        assert_eq!(":/a".parse::<Endpoint>(), Err(EndpointError::NoServers(":/a".into())));
        assert_eq!("a:1,,b:2:/x".parse::<Endpoint>(), Err(EndpointError::EmptyServer("a:1,,b:2:/x".into())));
        let e = "zk:2181:/a//b".parse::<Endpoint>().unwrap_err();
        assert!(matches!(&e, EndpointError::BadPath { reason, .. } if reason.starts_with("the path")), "{e}");
        let e = "zk:2181/c/:/a".parse::<Endpoint>().unwrap_err();
        assert!(
            matches!(&e, EndpointError::BadPath { reason, .. } if reason.starts_with("the chroot")),
            "{e}"
        );
        assert!(e.to_string().contains("zk:2181/c/:/a"), "{e}");
    }
}
