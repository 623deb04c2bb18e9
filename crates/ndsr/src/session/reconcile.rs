//! Making one node match what the program asked for, owner-checked.
//!
//! Every function here is idempotent and safe to race with itself or with
//! other clients: it reads, decides, and writes conditionally on the version
//! it read, re-reading when the condition fails.

use std::time::Duration;

use zookeeper_client::{Client, CreateMode, Error as Zk, Stat};

use crate::codec::{decode, user_part};
use crate::path::parent;
use crate::session::decide::{decide, Action, Observed, Owner};
use crate::session::desired::{Counters, ForeignDeletes};
use crate::session::parents::Parents;
use crate::session::{Goal, PastSessions, Shared};
use crate::{Error, Result};

/// The session an operation works in: the registry's settings, the
/// client, the sessions held before, and the parents made.
#[derive(Clone, Copy)]
pub(crate) struct On<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) client: &'a Client,
    pub(crate) past: &'a PastSessions,
    pub(crate) parents: &'a Parents,
}

/// What a write left in the node, for the cache.
pub(crate) struct Written {
    pub(crate) bytes: Vec<u8>,
    pub(crate) stat: Stat,
    /// The highest zxid seen before the write was sent: the write's own
    /// zxid can only be later, unless the server's history went back.
    pub(crate) floor: i64,
}

/// Brings `path` to `goal`: reads, lets [`decide`] pick the next step,
/// performs it (conditional on the version read) and reads again, until the
/// goal holds. Returns what it wrote, if it wrote. `requested`: the caller
/// asked for this just now (`set_node`, `unset`), so a difference is not
/// "someone else's change". `past`: this registry's earlier sessions;
/// `counters`: the registration's.
pub(crate) async fn enforce(
    on: On<'_>,
    path: &str,
    goal: &Goal,
    requested: bool,
    counters: &mut Counters,
) -> Result<Option<Written>> {
    let On { shared, client, past, parents } = on;
    let drops = Some(&counters.drops);
    let floor = shared.zxid_floor();
    let me = client.session_id().0;
    let mut paced = false;
    for _ in 0..shared.config.reconcile_attempts {
        let read = match goal {
            Goal::Ephemeral(_) => match shared.call("get_data", path, client.get_data(path)).await {
                Ok(read) => Some(read),
                Err(e) if e.is_no_node() => None,
                Err(e) => return Err(e),
            },
            // The stat is all an unset needs (and `exists` needs no read
            // permission).
            Goal::Absent => {
                shared.call("exists", path, client.check_stat(path)).await?.map(|s| (Vec::new(), s))
            }
        };
        let (observed, owner) = match &read {
            None => (Observed::Missing, Owner::Nobody),
            Some((data, stat)) => (
                Observed::Node { data, owner: stat.ephemeral_owner, version: stat.version },
                Owner::of(stat.ephemeral_owner, me, |o| past.contains(&o)),
            ),
        };
        let bytes = match goal {
            Goal::Ephemeral(bytes) => bytes.as_slice(),
            Goal::Absent => &[],
        };
        match decide(goal, observed, owner, paced) {
            Action::Done => return Ok(None),
            Action::LeaveAlone { owner } => {
                if let Goal::Ephemeral(_) = goal {
                    return Err(Error::Conflict { path: path.to_string(), owner });
                }
                tracing::info!(
                    path,
                    owner = format_args!("{owner:#x}"),
                    "unset registration: the node there is another session's registration; left alone"
                );
                return Ok(None);
            }
            Action::Create => {
                match create(shared, client, parents, path, bytes, CreateMode::Ephemeral, drops).await {
                    Ok(stat) => return Ok(Some(Written { bytes: bytes.to_vec(), stat, floor })),
                    Err(Error::ZooKeeper { source: Zk::NodeExists, .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
            Action::SetData { version } => {
                if !requested {
                    tracing::warn!(path, "registration's data was changed by someone else; writing it back");
                }
                let writing = client.set_data(path, bytes, Some(version));
                match shared.write_call("set_data", path, client, writing, drops).await {
                    Ok(stat) => return Ok(Some(Written { bytes: bytes.to_vec(), stat, floor })),
                    Err(Error::ZooKeeper { source: Zk::BadVersion | Zk::NoNode, .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
            Action::Replace { version } => {
                // Left by one of our own earlier sessions that the server
                // has not expired yet: replaced atomically, so watchers
                // never see the registration missing.
                if let Some((_, stat)) = &read {
                    tracing::info!(
                        path,
                        old = format_args!("{:#x}", stat.ephemeral_owner),
                        "replacing registration of an expired session"
                    );
                }
                let mut multi = client.new_multi_writer();
                let ephemeral = shared.create_options(CreateMode::Ephemeral);
                let queued = multi
                    .add_delete(path, Some(version))
                    .and_then(|()| multi.add_create(path, bytes, &ephemeral));
                if let Err(e) = queued {
                    return Err(Error::from_zk("replace", path, e));
                }
                let commit = multi.commit();
                match shared
                    .write_call("replace", path, client, async { commit.await.map_err(Zk::from) }, drops)
                    .await
                {
                    // Read back for the new stat.
                    Ok(_) | Err(Error::ZooKeeper { .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
            Action::Pace => {
                // Wait our turn, then look again: it may be gone, or changed.
                pace_foreign_delete(&mut counters.foreign).await;
                paced = true;
            }
            Action::Delete { version } => {
                if owner == Owner::Nobody {
                    tracing::warn!(
                        path,
                        "a persistent node reappeared where this registry unset its registration; deleting it \
                         (call set_node, or unwatch the path, to stop keeping it absent)"
                    );
                }
                match shared.call("delete", path, client.delete(path, Some(version))).await {
                    Ok(()) => return Ok(None),
                    Err(Error::ZooKeeper { source: Zk::NoNode | Zk::BadVersion, .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
        }
    }
    let during = match goal {
        Goal::Ephemeral(_) => "under the registration",
        Goal::Absent => "while being removed",
    };
    Err(Error::Contention { path: path.to_string(), during, attempts: shared.config.reconcile_attempts })
}

/// Waits before deleting another client's node again: 1 s after the first
/// deletion, doubling up to a minute while they keep coming (two quiet
/// minutes start over), so two programs that disagree about a path cannot
/// flood the servers.
async fn pace_foreign_delete(foreign: &mut ForeignDeletes) {
    let now = tokio::time::Instant::now();
    let wait_until = {
        let quiet = foreign.last.is_none_or(|t| now.duration_since(t) > Duration::from_secs(120));
        if quiet {
            foreign.count = 0;
        }
        let wait_until = foreign.last.filter(|_| !quiet).map(|t| {
            t + Duration::from_secs(1 << foreign.count.saturating_sub(1).min(6)).min(Duration::from_secs(60))
        });
        foreign.count = foreign.count.saturating_add(1);
        foreign.last = Some(wait_until.unwrap_or(now).max(now));
        wait_until
    };
    if let Some(at) = wait_until {
        tokio::time::sleep_until(at).await;
    }
}

/// Does the node's `current` data hold what `new` would write? Compared as
/// decoded objects; the defaults `pid` and `created` count only when the
/// caller gave them (`keep_defaults`), since they are new on every write.
pub(crate) fn same_value(current: &[u8], new: &[u8], keep_defaults: bool) -> bool {
    if keep_defaults {
        return decode(current) == decode(new);
    }
    user_part(&decode(current)) == user_part(&decode(new))
}

/// Writes persistent data unless the node already holds the same value.
/// Refuses (with [`Error::Conflict`]) to write into an ephemeral node of
/// another live session, which would revert it or take the data with it.
/// Every write is conditional on the version just read.
pub(crate) async fn set_data(
    on: On<'_>,
    path: &str,
    bytes: &[u8],
    keep_defaults: bool,
) -> Result<Option<Written>> {
    let On { shared, client, past, parents } = on;
    let floor = shared.zxid_floor();
    let me = client.session_id().0;
    for _ in 0..shared.config.reconcile_attempts {
        match shared.call("get_data", path, client.get_data(path)).await {
            Ok((data, stat)) => {
                let owner = stat.ephemeral_owner;
                if owner != 0 && owner != me && !past.contains(&owner) {
                    return Err(Error::Conflict { path: path.to_string(), owner });
                }
                if same_value(&data, bytes, keep_defaults) {
                    return Ok(None);
                }
                let writing = client.set_data(path, bytes, Some(stat.version));
                match shared.write_call("set_data", path, client, writing, None).await {
                    Ok(stat) => return Ok(Some(Written { bytes: bytes.to_vec(), stat, floor })),
                    Err(Error::ZooKeeper { source: Zk::BadVersion | Zk::NoNode, .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(e) if e.is_no_node() => {
                match create(shared, client, parents, path, bytes, CreateMode::Persistent, None).await {
                    Ok(stat) => return Ok(Some(Written { bytes: bytes.to_vec(), stat, floor })),
                    Err(Error::ZooKeeper { source: Zk::NodeExists, .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::Contention {
        path: path.to_string(),
        during: "while being written",
        attempts: shared.config.reconcile_attempts,
    })
}

/// Creates `path`, making missing parents as persistent nodes; `drops`:
/// a registration's count of dropped writes.
pub(crate) async fn create(
    shared: &Shared,
    client: &Client,
    parents: &Parents,
    path: &str,
    bytes: &[u8],
    mode: CreateMode,
    drops: Option<&std::sync::atomic::AtomicU32>,
) -> Result<Stat> {
    let options = shared.create_options(mode);
    match shared.write_call("create", path, client, client.create(path, bytes, &options), drops).await {
        Err(e) if e.is_no_node() => {
            create_under_new_parent(shared, client, parents, path, bytes, mode, drops).await
        }
        other => other.map(|(stat, _)| stat),
    }
}

/// Creates `path` after a create failed for want of its parent: makes the
/// parents (once for all the registrations racing into the same new
/// parent), then creates.
pub(crate) async fn create_under_new_parent(
    shared: &Shared,
    client: &Client,
    parents: &Parents,
    path: &str,
    bytes: &[u8],
    mode: CreateMode,
    drops: Option<&std::sync::atomic::AtomicU32>,
) -> Result<Stat> {
    let Some(parent) = parent(path) else {
        return Err(Error::InvalidPath { path: path.to_string(), reason: "the root cannot be created" });
    };
    let options = shared.create_options(mode);
    for attempt in 0..2 {
        parents.ensure(shared, client, parent).await?;
        match shared.write_call("create", path, client, client.create(path, bytes, &options), drops).await {
            // Someone removed the parent since we made it: make it again.
            Err(e) if e.is_no_node() && attempt == 0 => parents.forget(parent),
            other => return other.map(|(stat, _)| stat),
        }
    }
    Err(Error::NoConnection(format!("the parent of {path} keeps disappearing")))
}
