//! The lock's nodes: the lease node, kazoo's queue of contenders, and
//! taking a lease.

use std::time::Duration;

use tokio::time::Instant;
use zookeeper_client::{Client, CreateMode, Error as Zk, EventType, OneshotWatcher};

use super::withdraw::Withdraw;
use super::LockBuilder;
use crate::session::{reconcile, Lease, Shared};
use crate::{Error, Result};

/// Creates the lock node with the lease count, or checks that the node
/// already there is a lock node with the same count.
///
/// A lock never changes a node it did not create: a node that is
/// ephemeral (a registration), holds data that is not a lease count (a
/// configuration), or has children that are not lock holders (a service
/// directory) is refused with [`Error::NotALock`] before anything is
/// written. An existing node with no data is used as it is, as kazoo does
/// (kazoo creates its node empty, then writes the count).
pub(super) async fn ensure_lease_node(shared: &Shared, lease: &Lease, path: &str, n: u32) -> Result<()> {
    let client = &lease.client;
    let not_a_lock = |reason| Error::NotALock { path: path.to_string(), reason };
    for _ in 0..3 {
        match shared.call("get_data", path, client.get_data(path)).await {
            Ok((data, stat)) => {
                if stat.ephemeral_owner != 0 {
                    return Err(not_a_lock("it is an ephemeral node (a registration?)"));
                }
                let stored = std::str::from_utf8(&data).ok().and_then(|t| t.trim().parse::<u32>().ok());
                if stored.is_none() && !data.is_empty() {
                    return Err(not_a_lock(
                        "it holds data that is not a lock's lease count (a configuration?); a lock never changes a node it did not create",
                    ));
                }
                if stat.num_children > 0 {
                    let children = shared.call("get_children", path, client.list_children(path)).await?;
                    let mut families = children.iter().filter_map(|c| super::layout::family(c));
                    if let Some(found) = families.find(|f| *f != super::layout::SEMAPHORE) {
                        return Err(Error::LayoutMismatch {
                            path: path.to_string(),
                            found,
                            asked: super::layout::SEMAPHORE,
                        });
                    }
                    if children.iter().any(|c| !is_holder_name(c)) {
                        return Err(not_a_lock(
                            "it has children that are not lock holders (a service directory?)",
                        ));
                    }
                }
                return match stored {
                    Some(stored) if stored != n => {
                        Err(Error::LockMismatch { path: path.into(), stored, requested: n })
                    }
                    _ => Ok(()),
                };
            }
            Err(e) if e.is_no_node() => {
                let lease_count = n.to_string();
                let created = reconcile::create(
                    shared,
                    client,
                    &lease.parents,
                    path,
                    lease_count.as_bytes(),
                    CreateMode::Persistent,
                    None,
                )
                .await;
                match created {
                    Ok(_) => return Ok(()),
                    Err(Error::ZooKeeper { source: Zk::NodeExists, .. }) => continue,
                    Err(Error::ZooKeeper { source: Zk::NoChildrenForEphemerals, .. }) => {
                        return Err(not_a_lock("its parent is an ephemeral node (a registration?)"))
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::Contention {
        path: path.to_string(),
        during: "while being checked as a lock node",
        attempts: 3,
    })
}

/// Is `name` a lock holder's node (kazoo's: 32 hex digits of a uuid4)?
fn is_holder_name(name: &str) -> bool {
    name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Joins kazoo's internal `Lock` at `<path>-__lock__` and waits to lead it.
/// Returns the contender node's path.
pub(super) async fn enter_queue(
    shared: &Shared,
    lease: &Lease,
    lock: &LockBuilder,
    withdraw: &Withdraw,
    deadline: Instant,
) -> Result<String> {
    let client = &lease.client;
    let (dir, prefix) = (withdraw.dir.clone(), withdraw.prefix.clone());
    let contender = format!("{dir}/{prefix}");
    // A sequential node's name is only known once created: create it
    // under the queue directly (reconcile::create would retry with the
    // plain name), making the queue first, and again if someone removed it.
    let options = shared.create_options(CreateMode::EphemeralSequential);
    let mut attempt = 0;
    let (_, seq) = loop {
        lease.parents.ensure(shared, client, &dir).await?;
        match shared.call("create", &dir, client.create(&contender, lock.name.as_bytes(), &options)).await {
            Err(e) if e.is_no_node() && attempt == 0 => {
                attempt += 1;
                lease.parents.forget(&dir);
            }
            other => break other?,
        }
    };
    let mine = format!("{dir}/{prefix}{seq}");
    let my_seq = seq.to_string();
    let result: Result<()> = async {
        loop {
            let children = shared.call("get_children", &dir, client.list_children(&dir)).await?;
            let predecessor = children
                .iter()
                .filter_map(|c| c.rsplit_once("__lock__").map(|(_, s)| (s.to_string(), c)))
                .filter(|(s, _)| {
                    s.len() == my_seq.len() && s.chars().all(|c| c.is_ascii_digit()) && *s < my_seq
                })
                .max();
            let Some((_, predecessor)) = predecessor else { return Ok(()) };
            let node = format!("{dir}/{predecessor}");
            let (stat, watcher) = shared.call("exists", &node, client.check_and_watch_stat(&node)).await?;
            if stat.is_some() {
                wait_for(watcher, deadline, &lock.path, lock.wait).await?;
            }
        }
    }
    .await;
    match result {
        Ok(()) => Ok(mine),
        Err(e) => {
            let _ = shared.call("delete", &mine, client.delete(&mine, None)).await;
            Err(e)
        }
    }
}

/// Counts the holders and joins them when there is room; returns our node,
/// and when its create was sent (the server heard from us after that).
pub(super) async fn take_lease(
    shared: &Shared,
    client: &Client,
    lock: &LockBuilder,
    withdraw: &Withdraw,
    deadline: Instant,
) -> Result<(String, Instant)> {
    let Some(node) = withdraw.holder.clone() else {
        return Err(Error::InvalidArgument("a semaphore lock needs a holder node"));
    };
    loop {
        let (holders, watcher) =
            shared.call("get_children", &lock.path, client.list_and_watch_children(&lock.path)).await?;
        if holders.len() < lock.simultaneous as usize {
            let options = shared.create_options(CreateMode::Ephemeral);
            let sent = Instant::now();
            shared.call("create", &node, client.create(&node, lock.name.as_bytes(), &options)).await?;
            return Ok((node, sent));
        }
        wait_for(watcher, deadline, &lock.path, lock.wait).await?;
    }
}

async fn wait_for(watcher: OneshotWatcher, deadline: Instant, path: &str, wait: Duration) -> Result<()> {
    match tokio::time::timeout_at(deadline, watcher.changed()).await {
        Ok(event) if event.event_type == EventType::Session && event.session_state.is_terminated() => {
            Err(Error::NoConnection(format!("session lost while waiting for lock {path}")))
        }
        Ok(_) => Ok(()),
        Err(_) => Err(Error::LockTimeout { path: path.to_string(), waited: wait }),
    }
}
