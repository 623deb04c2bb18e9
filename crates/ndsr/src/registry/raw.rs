//! Raw persistent nodes: exact bytes read and written with no encoding, no
//! history and no watch of the registry's cache, in one call or in one
//! `multi`; and a persistent recursive watch of a subtree. For copying
//! trees between ensembles (`ndsr mirror`).

use zookeeper_client::{AddWatchMode, CreateMode, EventType, MultiWriteError, PersistentWatcher};

use super::Registry;
use crate::path::validate_path;
use crate::session::read_node;
use crate::snapshot::Stat;
use crate::{Error, Result};

/// A node read with its exact bytes, its stat and its children (sorted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawNode {
    /// The node's bytes, as stored.
    pub bytes: Vec<u8>,
    /// The node's stat.
    pub stat: Stat,
    /// The names of its children, sorted.
    pub children: Vec<String>,
}

/// One write of a [`Registry::write_raw`] transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawWrite {
    /// Create a persistent node (its parent must exist, or be created by
    /// an earlier write of the same transaction).
    Create {
        /// The node's path.
        path: String,
        /// Its bytes.
        bytes: Vec<u8>,
    },
    /// Set a node's bytes, whatever its version.
    Set {
        /// The node's path.
        path: String,
        /// Its new bytes.
        bytes: Vec<u8>,
    },
    /// Delete a node (it must have no children), whatever its version.
    Delete {
        /// The node's path.
        path: String,
    },
}

impl RawWrite {
    /// The path the write is at.
    pub fn path(&self) -> &str {
        match self {
            RawWrite::Create { path, .. } | RawWrite::Set { path, .. } | RawWrite::Delete { path } => path,
        }
    }

    /// The bytes it sends, about (path, data, headers), for sizing batches.
    pub fn size(&self) -> usize {
        match self {
            RawWrite::Create { path, bytes } => 64 + path.len() + bytes.len(),
            RawWrite::Set { path, bytes } => 32 + path.len() + bytes.len(),
            RawWrite::Delete { path } => 32 + path.len(),
        }
    }

    fn op(&self) -> &'static str {
        match self {
            RawWrite::Create { .. } => "create",
            RawWrite::Set { .. } => "set_data",
            RawWrite::Delete { .. } => "delete",
        }
    }
}

/// What a [`TreeWatch`] saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TreeEvent {
    /// A node under the watched path was created, changed or deleted, or
    /// its children changed (the node's path).
    Changed(String),
    /// The connection was lost or came back: events may have been lost
    /// meanwhile (ZOOKEEPER-4698), so read the tree again. The watch goes
    /// on in the same session.
    Reconnected,
    /// The session ended (expired or closed): no more events; set a new
    /// watch once connected again.
    Ended,
}

/// A persistent recursive watch of a subtree (ZooKeeper 3.6 or later),
/// from [`Registry::watch_tree`]. It lasts as long as the session it was
/// set in.
pub struct TreeWatch {
    watcher: Option<PersistentWatcher>,
}

impl std::fmt::Debug for TreeWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeWatch").field("ended", &self.watcher.is_none()).finish()
    }
}

impl TreeWatch {
    /// The next event; [`TreeEvent::Ended`] at once, and forever, after
    /// the session ended.
    ///
    /// # Cancellation safety
    /// Cancel-safe: an event not yet returned stays queued.
    pub async fn next(&mut self) -> TreeEvent {
        let Some(watcher) = self.watcher.as_mut() else { return TreeEvent::Ended };
        let event = watcher.changed().await;
        if event.event_type != EventType::Session {
            return TreeEvent::Changed(event.path);
        }
        if event.session_state.is_terminated() {
            // The client panics if asked again after a terminal event.
            self.watcher = None;
            return TreeEvent::Ended;
        }
        TreeEvent::Reconnected
    }
}

impl Registry {
    /// Reads `path`'s exact bytes, stat and children once (one round trip,
    /// pipelined), without a watch; `None`: no node.
    ///
    /// # Errors
    /// [`Error::InvalidPath`], [`Error::NoConnection`], [`Error::NotAuthorized`].
    ///
    /// # Cancellation safety
    /// Cancel-safe: it only reads.
    pub async fn read_node_raw(&self, path: &str) -> Result<Option<RawNode>> {
        validate_path(path)?;
        let client = self.shared.lease(self.deadline()).await?.client;
        let read = read_node(&self.shared, &client, path).await?;
        Ok(read.node.map(|(bytes, stat)| RawNode { bytes, stat, children: read.children }))
    }

    /// Makes `path` a node holding exactly `bytes`: sets it if it exists
    /// (whatever its version or kind), or creates it persistent, with the
    /// registry's ACL and missing parents. Unlike
    /// [`set_data`](Self::set_data), the path is not watched and nothing
    /// is encoded.
    ///
    /// # Errors
    /// [`Error::ReadOnly`], [`Error::InvalidPath`], [`Error::DataTooLarge`]
    /// before any network call; [`Error::NoConnection`],
    /// [`Error::NotAuthorized`], [`Error::Contention`] when the node keeps
    /// being deleted and created meanwhile, or another ZooKeeper error.
    ///
    /// # Cancellation safety
    /// A call dropped part-way may have created parents, or the node.
    pub async fn put_raw(&self, path: &str, bytes: &[u8]) -> Result<()> {
        self.check_write("put_raw", path, bytes.to_vec())?;
        let client = self.shared.lease(self.deadline()).await?.client;
        let options = self.shared.create_options(CreateMode::Persistent);
        for _ in 0..4 {
            match self.shared.call("set_data", path, client.set_data(path, bytes, None)).await {
                Ok(_) => return Ok(()),
                Err(e) if e.is_no_node() => {}
                Err(e) => return Err(e),
            }
            if let Some(parent) = crate::path::parent(path).filter(|p| *p != "/") {
                match self.shared.call("create parents of", path, client.mkdir(parent, &options)).await {
                    Ok(()) => {}
                    // Deleted meanwhile, or the chroot is missing: the
                    // create says which.
                    Err(e) if e.is_no_node() => {}
                    Err(e) => return Err(e),
                }
            }
            match self.shared.call("create", path, client.create(path, bytes, &options)).await {
                Ok(_) => return Ok(()),
                // Made meanwhile (set it), or its parent went (make it).
                Err(Error::ZooKeeper { source: zookeeper_client::Error::NodeExists, .. }) => {}
                Err(e) if e.is_no_node() => {}
                Err(e) => return Err(e),
            }
        }
        Err(Error::Contention { path: path.to_string(), during: "while being written", attempts: 4 })
    }

    /// Deletes the node at `path`, whatever its version; an absent node is
    /// fine.
    ///
    /// # Errors
    /// [`Error::ReadOnly`], [`Error::InvalidPath`] (also `/` and, without a
    /// chroot, `/zookeeper`), [`Error::NotEmpty`] when it has children,
    /// [`Error::NoConnection`], [`Error::NotAuthorized`].
    ///
    /// # Cancellation safety
    /// A delete already sent may or may not be performed.
    pub async fn delete_raw(&self, path: &str) -> Result<()> {
        self.check_removable("delete_raw", path)?;
        let client = self.shared.lease(self.deadline()).await?.client;
        match self.shared.call("delete", path, client.delete(path, None)).await {
            Err(e) if e.is_no_node() => Ok(()),
            other => other,
        }
    }

    /// Makes `writes` in one transaction (`multi`), in order: all of them
    /// or none. Creates are persistent, with the registry's ACL; sets and
    /// deletes take any version. Keep a transaction under the servers'
    /// request limit (`jute.maxbuffer`, 1 MB by default; see
    /// [`RawWrite::size`]).
    ///
    /// # Errors
    /// Before any network call: [`Error::ReadOnly`], [`Error::InvalidPath`]
    /// (a bad path, `/`, `/zookeeper` to delete without a chroot),
    /// [`Error::DataTooLarge`] when the transaction is over the registry's
    /// request limit. Then the failed write's error, naming its path
    /// ([`Error::NotEmpty`], [`Error::NotAuthorized`], `NoNode` or
    /// `NodeExists` as [`Error::ZooKeeper`]), and nothing written;
    /// [`Error::NoConnection`] when nothing was sent; [`Error::OutcomeUnknown`]
    /// when the answer was lost.
    ///
    /// # Cancellation safety
    /// A transaction sent is performed or not as a whole.
    pub async fn write_raw(&self, writes: &[RawWrite]) -> Result<()> {
        let Some(first) = writes.first() else { return Ok(()) };
        let mut size = 64;
        for write in writes {
            match write {
                RawWrite::Create { path, bytes } | RawWrite::Set { path, bytes } => {
                    self.check_write("write_raw", path, Vec::new())?;
                    let limit = self.shared.config.max_data_size;
                    if bytes.len() > limit {
                        return Err(Error::DataTooLarge { path: path.clone(), size: bytes.len(), limit });
                    }
                }
                RawWrite::Delete { path } => self.check_removable("write_raw", path)?,
            }
            size += write.size() + self.acl_bytes();
        }
        let limit = self.shared.config.max_request_size;
        if size > limit {
            return Err(Error::DataTooLarge { path: first.path().to_string(), size, limit });
        }
        let client = self.shared.lease(self.deadline()).await?.client;
        let options = self.shared.create_options(CreateMode::Persistent);
        let mut multi = client.new_multi_writer();
        for write in writes {
            let added = match write {
                RawWrite::Create { path, bytes } => multi.add_create(path, bytes, &options),
                RawWrite::Set { path, bytes } => multi.add_set_data(path, bytes, None),
                RawWrite::Delete { path } => multi.add_delete(path, None),
            };
            added.map_err(|e| Error::from_zk(write.op(), write.path(), e))?;
        }
        self.shared.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let unknown = || Error::OutcomeUnknown { op: "write_raw", path: first.path().to_string() };
        match tokio::time::timeout(self.shared.op_timeout(), multi.commit()).await {
            Ok(Ok(_)) => Ok(()),
            Err(_) => Err(unknown()),
            Ok(Err(MultiWriteError::RequestFailed { source })) => {
                use zookeeper_client::Error as Zk;
                match source {
                    Zk::ConnectionLoss | Zk::Timeout | Zk::SessionExpired => Err(unknown()),
                    other => Err(Error::from_zk("multi", first.path(), other)),
                }
            }
            Ok(Err(MultiWriteError::OperationFailed { index, source })) => {
                let failed = writes.get(index).unwrap_or(first);
                Err(Error::from_zk(failed.op(), failed.path(), source))
            }
        }
    }

    /// Sets a persistent recursive watch on `path` (which need not exist)
    /// and its whole subtree, in the current session.
    ///
    /// # Errors
    /// [`Error::InvalidPath`], [`Error::NoConnection`], or ZooKeeper's
    /// refusal (a server older than 3.6 does not know the request).
    pub async fn watch_tree(&self, path: &str) -> Result<TreeWatch> {
        validate_path(path)?;
        let client = self.shared.lease(self.deadline()).await?.client;
        let watcher = self
            .shared
            .call("add_watch", path, client.watch(path, AddWatchMode::PersistentRecursive))
            .await?;
        Ok(TreeWatch { watcher: Some(watcher) })
    }

    /// The bytes of the registry's ACL in a create.
    fn acl_bytes(&self) -> usize {
        self.shared.acl.iter().map(|a| 16 + a.scheme().len() + a.id().len()).sum()
    }
}
