//! Making one node match what the program asked for, owner-checked.
//!
//! Every function here is idempotent and safe to race with itself or with
//! other clients: it reads, decides, and writes conditionally on the version
//! it read, re-reading when the condition fails.

use zookeeper_client::{Client, CreateMode, Error as Zk, Stat};

use crate::codec::{decode, user_part};
use crate::path::parent;
use crate::session::{Goal, Shared};
use crate::{Error, Result};

/// Attempts before a goal that keeps moving is reported as an error.
const ATTEMPTS: usize = 8;

/// What a write left in the node, for the cache.
pub(crate) struct Written {
    pub(crate) bytes: Vec<u8>,
    pub(crate) stat: Stat,
}

/// Brings `path` to `goal`. Returns what it wrote, if it wrote.
pub(crate) async fn enforce(
    shared: &Shared,
    client: &Client,
    path: &str,
    goal: &Goal,
) -> Result<Option<Written>> {
    match goal {
        Goal::Ephemeral(bytes) => ensure_ephemeral(shared, client, path, bytes).await,
        Goal::Absent => ensure_absent(shared, client, path).await.map(|()| None),
    }
}

async fn ensure_ephemeral(
    shared: &Shared,
    client: &Client,
    path: &str,
    bytes: &[u8],
) -> Result<Option<Written>> {
    let me = client.session_id().0;
    for _ in 0..ATTEMPTS {
        match shared.call("get_data", path, client.get_data(path)).await {
            Ok((data, stat)) if stat.ephemeral_owner == me => {
                if data == bytes {
                    return Ok(None);
                }
                tracing::warn!(path, "registration's data was changed by someone else; writing it back");
                match shared.call("set_data", path, client.set_data(path, bytes, Some(stat.version))).await {
                    Ok(stat) => return Ok(Some(Written { bytes: bytes.to_vec(), stat })),
                    Err(Error::ZooKeeper { source: Zk::BadVersion | Zk::NoNode, .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
            Ok((_, stat)) if stat.ephemeral_owner != 0 && shared.is_past_session(stat.ephemeral_owner) => {
                // Left by one of our own earlier sessions that the server
                // has not expired yet: replace it atomically, so watchers
                // never see the registration missing.
                tracing::info!(
                    path,
                    old = format_args!("{:#x}", stat.ephemeral_owner),
                    "replacing registration of an expired session"
                );
                let mut multi = client.new_multi_writer();
                let ephemeral = shared.create_options(CreateMode::Ephemeral);
                let queued = multi
                    .add_delete(path, Some(stat.version))
                    .and_then(|()| multi.add_create(path, bytes, &ephemeral));
                if let Err(e) = queued {
                    return Err(Error::from_zk("replace", path, e));
                }
                let commit = multi.commit();
                match shared.call("replace", path, async { commit.await.map_err(Zk::from) }).await {
                    Ok(_) => continue, // read back for the new stat
                    Err(Error::ZooKeeper { .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
            Ok((_, stat)) => {
                return Err(Error::Conflict { path: path.to_string(), owner: stat.ephemeral_owner })
            }
            Err(Error::ZooKeeper { source: Zk::NoNode, .. }) => {
                match create(shared, client, path, bytes, CreateMode::Ephemeral).await {
                    Ok(stat) => return Ok(Some(Written { bytes: bytes.to_vec(), stat })),
                    Err(Error::ZooKeeper { source: Zk::NodeExists, .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::NoConnection(format!("{path} kept changing under the registration ({ATTEMPTS} attempts)")))
}

async fn ensure_absent(shared: &Shared, client: &Client, path: &str) -> Result<()> {
    for _ in 0..ATTEMPTS {
        match shared.call("exists", path, client.check_stat(path)).await? {
            None => return Ok(()),
            Some(stat) => match shared.call("delete", path, client.delete(path, Some(stat.version))).await {
                Ok(()) => return Ok(()),
                Err(Error::ZooKeeper { source: Zk::NoNode | Zk::BadVersion, .. }) => continue,
                Err(e) => return Err(e),
            },
        }
    }
    Err(Error::NoConnection(format!("{path} kept changing while being removed ({ATTEMPTS} attempts)")))
}

/// Writes persistent data unless the node already holds the same user value
/// (`current` is the node's last known data, `None` when missing).
pub(crate) async fn set_data(
    shared: &Shared,
    client: &Client,
    path: &str,
    bytes: &[u8],
    current: Option<&Option<crate::codec::Object>>,
) -> Result<Option<Written>> {
    if let Some(current) = current {
        if user_part(current) == user_part(&decode(bytes)) {
            return Ok(None);
        }
    }
    for _ in 0..ATTEMPTS {
        match shared.call("set_data", path, client.set_data(path, bytes, None)).await {
            Ok(stat) => return Ok(Some(Written { bytes: bytes.to_vec(), stat })),
            Err(Error::ZooKeeper { source: Zk::NoNode, .. }) => {}
            Err(e) => return Err(e),
        }
        match create(shared, client, path, bytes, CreateMode::Persistent).await {
            Ok(stat) => return Ok(Some(Written { bytes: bytes.to_vec(), stat })),
            Err(Error::ZooKeeper { source: Zk::NodeExists, .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::NoConnection(format!("{path} kept changing while being written ({ATTEMPTS} attempts)")))
}

/// Creates `path`, making missing parents as persistent nodes.
pub(crate) async fn create(
    shared: &Shared,
    client: &Client,
    path: &str,
    bytes: &[u8],
    mode: CreateMode,
) -> Result<Stat> {
    let options = shared.create_options(mode);
    match shared.call("create", path, client.create(path, bytes, &options)).await {
        Err(Error::ZooKeeper { source: Zk::NoNode, .. }) => {
            create_under_new_parent(shared, client, path, bytes, mode).await
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
    path: &str,
    bytes: &[u8],
    mode: CreateMode,
) -> Result<Stat> {
    let Some(parent) = parent(path) else {
        return Err(Error::InvalidPath { path: path.to_string(), reason: "the root cannot be created" });
    };
    let options = shared.create_options(mode);
    for attempt in 0..2 {
        shared.ensure_parent(client, parent).await?;
        match shared.call("create", path, client.create(path, bytes, &options)).await {
            // Someone removed the parent since we made it: make it again.
            Err(Error::ZooKeeper { source: Zk::NoNode, .. }) if attempt == 0 => shared.forget_parent(parent),
            other => return other.map(|(stat, _)| stat),
        }
    }
    Err(Error::NoConnection(format!("the parent of {path} keeps disappearing")))
}
