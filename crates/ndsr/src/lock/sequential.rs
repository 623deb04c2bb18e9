//! Taking a lock in kazoo's or Curator's layout: one ephemeral sequential
//! node per contender under the lock path; each watches only the node it
//! waits for (no herd).

use std::sync::Arc;

use tokio::time::Instant;
use zookeeper_client::{Client, CreateMode, Error as Zk, EventType};

use super::guard::Silence;
use super::layout::{Place, Rule};
use super::withdraw::Withdraw;
use super::{LockBuilder, LockGuard};
use crate::session::{Lease, Shared};
use crate::{Error, Result};

/// [`LockBuilder::acquire`] for the kazoo and Curator layouts (the
/// builder's options already checked).
pub(super) async fn acquire(lock: LockBuilder) -> Result<LockGuard> {
    let shared = lock.registry.shared().clone();
    let connect_by = Instant::now() + shared.config.connect_timeout_or_default();
    let lease = shared.lease(connect_by).await?;
    let deadline = Instant::now() + lock.wait;
    let rule = Rule::new(lock.layout, lock.mode, uuid::Uuid::new_v4());
    let path = lock.path.as_str();
    // Another layout's path is refused before anything is written.
    let children = match shared.call("get_children", path, lease.client.list_children(path)).await {
        Ok(children) => children,
        Err(e) if e.is_no_node() => Vec::new(),
        Err(e) => return Err(e),
    };
    mismatch(&rule, path, &children)?;
    // Until this call succeeds, returning or being dropped deletes every
    // node with our prefix: a create whose answer was lost may have made
    // one.
    let withdraw = Withdraw::sequential(&shared, lease.epoch, path, &rule.prefix);
    let result = wait_turn(&shared, &lease, &lock, &rule, deadline).await;
    let (node, heard) = match result {
        Ok(taken) => taken,
        Err(e) => {
            withdraw.now().await;
            return Err(e);
        }
    };
    withdraw.defuse();
    let timeout = lease.client.session_timeout();
    let silence = Silence { heard, timeout, limit: timeout.mul_f64(lock.lost_after) };
    let epoch = lease.epoch;
    drop(lease);
    Ok(LockGuard::new(shared, epoch, lock.path, node, silence))
}

fn mismatch(rule: &Rule, path: &str, children: &[String]) -> Result<()> {
    match rule.foreign(children) {
        Some(found) => Err(Error::LayoutMismatch { path: path.to_string(), found, asked: rule.family() }),
        None => Ok(()),
    }
}

/// Makes our node and waits until it holds the lock; returns its path,
/// and when the request that found it ours was sent.
async fn wait_turn(
    shared: &Arc<Shared>,
    lease: &Lease,
    lock: &LockBuilder,
    rule: &Rule,
    deadline: Instant,
) -> Result<(String, Instant)> {
    let (client, path) = (&lease.client, lock.path.as_str());
    let mut name = create(shared, lease, lock, rule, false).await?;
    loop {
        let children = match shared.call("get_children", path, client.list_children(path)).await {
            Ok(children) => children,
            Err(e) if e.is_no_node() => Vec::new(),
            Err(e) => return Err(e),
        };
        mismatch(rule, path, &children)?;
        match rule.place(&children, &name) {
            // Deleted by someone else (kazoo re-creates it, as here).
            Place::Missing => name = create(shared, lease, lock, rule, true).await?,
            Place::Holds => {
                let node = format!("{path}/{name}");
                let sent = Instant::now();
                let stat = shared.call("exists", &node, client.check_stat(&node)).await?;
                // Ours only if owned by this live session (CURATOR-696).
                match stat {
                    Some(stat) if stat.ephemeral_owner == client.session_id().0 => return Ok((node, sent)),
                    Some(_) => {
                        return Err(Error::NoConnection(format!(
                            "lock node {node} is not owned by this registry's session (it expired?)"
                        )))
                    }
                    None => name = create(shared, lease, lock, rule, true).await?,
                }
            }
            Place::Behind(ahead) => {
                let ahead = format!("{path}/{ahead}");
                let watcher = match shared.call("get_data", &ahead, client.get_and_watch_data(&ahead)).await {
                    Ok((_, _, watcher)) => watcher,
                    // Gone meanwhile: look again.
                    Err(e) if e.is_no_node() => continue,
                    Err(e) => return Err(e),
                };
                match tokio::time::timeout_at(deadline, watcher.changed()).await {
                    Ok(event)
                        if event.event_type == EventType::Session && event.session_state.is_terminated() =>
                    {
                        return Err(Error::NoConnection(format!(
                            "session lost while waiting for lock {path}"
                        )))
                    }
                    Ok(_) => {}
                    Err(_) => return Err(Error::LockTimeout { path: path.to_string(), waited: lock.wait }),
                }
            }
        }
    }
}

/// Makes our ephemeral sequential node (the lock path first, where
/// missing; again if someone removed it). A create whose answer was lost
/// is found by our unique prefix, not made twice (`look_first`: one sent
/// earlier may be there). Returns its name.
async fn create(
    shared: &Shared,
    lease: &Lease,
    lock: &LockBuilder,
    rule: &Rule,
    look_first: bool,
) -> Result<String> {
    let (client, path) = (&lease.client, lock.path.as_str());
    if look_first {
        if let Some(name) = find(shared, client, path, &rule.prefix).await {
            return Ok(name);
        }
    }
    let options = shared.create_options(CreateMode::EphemeralSequential);
    let prefixed = format!("{path}/{}", rule.prefix);
    for _ in 0..2 {
        lease.parents.ensure(shared, client, path).await?;
        match shared.call("create", path, client.create(&prefixed, lock.name.as_bytes(), &options)).await {
            Ok((_, seq)) => return Ok(format!("{}{seq}", rule.prefix)),
            Err(e) if e.is_no_node() => lease.parents.forget(path),
            Err(Error::ZooKeeper { source: Zk::NoChildrenForEphemerals, .. }) => {
                return Err(Error::NotALock {
                    path: path.to_string(),
                    reason: "it is an ephemeral node (a registration?)",
                })
            }
            Err(e) => {
                // Sent, perhaps made: look for it.
                return match find(shared, client, path, &rule.prefix).await {
                    Some(name) => Ok(name),
                    None => Err(e),
                };
            }
        }
    }
    Err(Error::Contention { path: path.to_string(), during: "while its lock node was made", attempts: 2 })
}

/// Our node (named with `prefix`) among the children of `path`, if there.
async fn find(shared: &Shared, client: &Client, path: &str, prefix: &str) -> Option<String> {
    let children = shared.call("get_children", path, client.list_children(path)).await.ok()?;
    children.into_iter().find(|c| c.starts_with(prefix))
}
