//! The transaction layer of releases: one `multi` with each step named
//! (so a failure names the node), what is read before it, what the last
//! release of a path left (`Known`), and the kept lease.

use zookeeper_client::{Client, CreateMode, Error as Zk, MultiWriteError, MultiWriteResult, Stat};

use super::{host_name, sha256_hex, Header, Layout, Operation, ENTRY_FORMAT};
use crate::{Error, Registry, Result};

/// What a step of a transaction is, to name the step that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Creating one of the path's record nodes (first write).
    Layout,
    /// Checking the schema's version, or writing the schema.
    Schema,
    /// Writing the live node (set, or create).
    Live,
    /// Creating the history or audit entry.
    Record,
    /// Removing the oldest entries beyond the limit.
    Prune,
    /// Writing or removing the path's canary.
    Canary,
}

/// A transaction being built, with what each step is and where.
pub(super) struct Txn<'c> {
    pub(super) multi: zookeeper_client::MultiWriter<'c>,
    pub(super) steps: Vec<(Step, &'static str, String)>,
    pub(super) size: usize,
    pub(super) acl: usize,
}

impl<'c> Txn<'c> {
    pub(super) fn new(client: &'c Client, acl: usize) -> Self {
        Txn { multi: client.new_multi_writer(), steps: Vec::new(), size: 64, acl }
    }

    pub(super) fn push(
        &mut self,
        step: Step,
        op: &'static str,
        path: &str,
        added: std::result::Result<(), Zk>,
    ) -> Result<()> {
        added.map_err(|e| Error::from_zk(op, path, e))?;
        self.size += 16 + path.len();
        self.steps.push((step, op, path.to_string()));
        Ok(())
    }

    pub(super) fn create(
        &mut self,
        step: Step,
        path: &str,
        data: &[u8],
        options: &zookeeper_client::CreateOptions<'_>,
    ) -> Result<()> {
        self.size += data.len() + self.acl;
        let added = self.multi.add_create(path, data, options);
        self.push(step, "create", path, added)
    }

    pub(super) fn set(&mut self, step: Step, path: &str, data: &[u8], version: i32) -> Result<()> {
        self.size += data.len();
        let added = self.multi.add_set_data(path, data, Some(version));
        self.push(step, "set_data", path, added)
    }

    pub(super) fn check(&mut self, step: Step, path: &str, version: i32) -> Result<()> {
        let added = self.multi.add_check_version(path, version);
        self.push(step, "check", path, added)
    }

    /// Creates a record (`<dir>/<prefix><sequence>`) holding `data`, and
    /// removes the oldest of `names` (the records there now, sorted) so
    /// that at most `keep` remain; returns how many it removes.
    pub(super) fn record(
        &mut self,
        dir: &str,
        prefix: &str,
        data: &[u8],
        names: &[String],
        keep: usize,
        options: &zookeeper_client::CreateOptions<'_>,
    ) -> Result<usize> {
        self.create(Step::Record, &format!("{dir}/{prefix}"), data, options)?;
        let over = (names.len() + 1).saturating_sub(keep);
        for name in names.iter().take(over) {
            self.delete(Step::Prune, &format!("{dir}/{name}"))?;
        }
        Ok(over)
    }

    /// Refuses a transaction over `limit` bytes (ZooKeeper's request
    /// limit), naming `path`, before anything is sent.
    pub(super) fn fits(&self, path: &str, limit: usize) -> Result<()> {
        if self.size > limit {
            return Err(Error::DataTooLarge { path: path.into(), size: self.size, limit });
        }
        Ok(())
    }

    /// Deletes `path` only at `version`.
    pub(super) fn delete_at(&mut self, step: Step, path: &str, version: i32) -> Result<()> {
        let added = self.multi.add_delete(path, Some(version));
        self.push(step, "delete", path, added)
    }

    pub(super) fn delete(&mut self, step: Step, path: &str) -> Result<()> {
        let added = self.multi.add_delete(path, None);
        self.push(step, "delete", path, added)
    }
}

/// What is read before a write: one round trip, pipelined.
#[derive(Clone)]
pub(crate) struct Found {
    pub(super) live: Option<Stat>,
    pub(super) meta: bool,
    pub(super) schema: Option<(Vec<u8>, Stat)>,
    pub(super) history: Option<Vec<String>>,
    pub(super) audit: Option<Vec<String>>,
}

/// What this registry's last release of each path left behind, so that
/// the next release of it needs no read first: one round trip, as a bare
/// `setData`. Only a guess: every fact it holds is checked by the
/// transaction itself (the live node's and the schema's versions; a stale
/// entry name fails its delete), and a failed guess is read afresh.
#[derive(Default)]
pub(crate) struct Known {
    paths: std::sync::Mutex<std::collections::HashMap<String, Found>>,
    /// The session's client as last lent by the hub, with its epoch: lent
    /// again without asking while that session is the registry's and
    /// connected (asking is a round trip through the hub's queue, about a
    /// sixth of a publish here).
    lease: std::sync::Mutex<Option<(u64, Client)>>,
}

/// Paths whose state is kept at most (a registry publishing to more
/// starts over: a cold cache costs one read per path).
const KNOWN_PATHS: usize = 1024;

impl Known {
    /// Drops the kept client: the session it belongs to can then end.
    pub(crate) fn forget_lease(&self) {
        self.lease.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    pub(super) fn take(&self, path: &str) -> Option<Found> {
        self.paths.lock().unwrap_or_else(|e| e.into_inner()).remove(path)
    }

    pub(super) fn put(&self, path: &str, found: Found) {
        let mut paths = self.paths.lock().unwrap_or_else(|e| e.into_inner());
        if paths.len() >= KNOWN_PATHS {
            paths.clear();
        }
        paths.insert(path.to_string(), found);
    }
}

/// How a failed transaction ends: retried after a fresh read, or failed.
pub(super) enum Failed {
    Retry,
    Fail(Error),
}

impl Registry {
    /// A history entry's header for `bytes` at `path`, by this registry's
    /// author and host, now; the versions, the life, the schema's version
    /// and what it rolls back are the caller's to set.
    pub(super) fn entry_header(&self, path: &str, op: Operation, bytes: &[u8], message: &str) -> Header {
        Header {
            format: ENTRY_FORMAT.into(),
            v: 1,
            path: path.into(),
            op,
            version: 0,
            from_version: None,
            node_czxid: None,
            sha256: sha256_hex(bytes),
            size: bytes.len(),
            author: self.shared.config.author_or_default(),
            host: host_name().to_string(),
            time: now(),
            message: message.into(),
            schema_version: None,
            rollback_of: None,
        }
    }

    /// The session's client for configuration calls: the hub's lease for
    /// the present epoch, kept for that epoch (see [`Known::lease`]).
    pub(super) async fn config_client(&self) -> Result<Client> {
        let kept = self.known.lease.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some((epoch, client)) = kept {
            if self.shared.holds(epoch) && self.state() == crate::State::Connected {
                return Ok(client);
            }
        }
        let lease = self.shared.lease(self.deadline()).await?;
        *self.known.lease.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((lease.epoch, lease.client.clone()));
        Ok(lease.client)
    }

    pub(super) async fn read_found(&self, client: &Client, layout: &Layout, path: &str) -> Result<Found> {
        let s = &self.shared;
        let (live, meta, schema, history, audit) = tokio::join!(
            s.call("exists", path, client.check_stat(path)),
            s.call("exists", &layout.meta, client.check_stat(&layout.meta)),
            s.call("get_data", &layout.schema, client.get_data(&layout.schema)),
            s.call("get_children", &layout.history, client.list_children(&layout.history)),
            s.call("get_children", &layout.audit, client.list_children(&layout.audit)),
        );
        let missing = |r: Result<Vec<String>>| match r {
            Ok(mut names) => {
                names.sort();
                Ok(Some(names))
            }
            Err(e) if e.is_no_node() => Ok(None),
            Err(e) => Err(e),
        };
        Ok(Found {
            live: live?,
            meta: meta?.is_some(),
            schema: match schema {
                Ok(found) => Some(found),
                Err(e) if e.is_no_node() => None,
                Err(e) => return Err(e),
            },
            history: missing(history)?,
            audit: missing(audit)?,
        })
    }

    /// Makes `path` and its parents, as empty persistent nodes, where missing.
    pub(super) async fn ensure(&self, client: &Client, path: &str) -> Result<()> {
        let options = self.shared.create_options(CreateMode::Persistent);
        let ends = path.match_indices('/').map(|(i, _)| i).filter(|&i| i > 0).chain([path.len()]);
        for end in ends {
            let node = &path[..end];
            match self.shared.call("create", node, client.create(node, b"", &options)).await {
                Ok(_) => {}
                Err(Error::ZooKeeper { source: Zk::NodeExists, .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Adds the creation of whatever of the path's record nodes is missing
    /// (`schema` holding `schema_bytes` if it is made here).
    pub(super) fn add_layout(
        &self,
        txn: &mut Txn<'_>,
        layout: &Layout,
        path: &str,
        found: &Found,
        schema_bytes: &[u8],
    ) -> Result<()> {
        let options = self.shared.create_options(CreateMode::Persistent);
        if !found.meta {
            let meta = serde_json::json!({"format": "ndsr-config", "v": 1, "path": path});
            txn.create(Step::Layout, &layout.meta, meta.to_string().as_bytes(), &options)?;
        }
        if found.schema.is_none() {
            txn.create(Step::Schema, &layout.schema, schema_bytes, &options)?;
        }
        if found.history.is_none() {
            txn.create(Step::Layout, &layout.history, b"", &options)?;
        }
        if found.audit.is_none() {
            txn.create(Step::Layout, &layout.audit, b"", &options)?;
        }
        Ok(())
    }

    pub(super) fn acl_size(&self) -> usize {
        self.shared.acl.iter().map(|a| 16 + a.scheme().len() + a.id().len()).sum()
    }

    /// Sends a transaction under the operation timeout and says what its
    /// failure means: retry after a fresh read (another writer's change), or
    /// fail with the step that failed named.
    pub(super) async fn commit(
        &self,
        mut txn: Txn<'_>,
        what: &'static str,
        path: &str,
        if_version: Option<i32>,
    ) -> std::result::Result<(Vec<MultiWriteResult>, Vec<(Step, &'static str, String)>), Failed> {
        use std::sync::atomic::Ordering;
        let floor = self.shared.zxid_floor();
        self.shared.requests.fetch_add(1, Ordering::Relaxed);
        let steps = std::mem::take(&mut txn.steps);
        let sent = tokio::time::timeout(self.shared.op_timeout(), txn.multi.commit()).await;
        let unknown = || Failed::Fail(Error::OutcomeUnknown { op: what, path: path.to_string() });
        match sent {
            Ok(Ok(results)) => {
                if let Some(MultiWriteResult::SetData { stat }) =
                    results.iter().find(|r| matches!(r, MultiWriteResult::SetData { .. }))
                {
                    self.shared.wrote_at(path, floor, stat.mzxid);
                }
                Ok((results, steps))
            }
            Err(_) => Err(unknown()),
            Ok(Err(MultiWriteError::RequestFailed { source })) => match source {
                Zk::ConnectionLoss | Zk::Timeout | Zk::SessionExpired => Err(unknown()),
                other => Err(Failed::Fail(Error::from_zk("multi", path, other))),
            },
            Ok(Err(MultiWriteError::OperationFailed { index, source })) => {
                let Some((step, op, node)) = steps.get(index).cloned() else {
                    return Err(Failed::Fail(Error::from_zk("multi", path, source)));
                };
                match (step, &source) {
                    (_, Zk::NoAuth) => Err(Failed::Fail(Error::NotAuthorized { op, path: node })),
                    (Step::Live, Zk::BadVersion | Zk::NoNode | Zk::NodeExists) if if_version.is_some() => {
                        let client = self.config_client().await.map_err(Failed::Fail)?;
                        let current = self
                            .shared
                            .call("exists", path, client.check_stat(path))
                            .await
                            .map_err(Failed::Fail)?
                            .map(|s| s.version);
                        let expected = if_version.unwrap_or_default();
                        Err(Failed::Fail(Error::VersionConflict { path: path.into(), expected, current }))
                    }
                    // Another writer changed what was read: read again.
                    (Step::Live | Step::Schema, Zk::BadVersion | Zk::NoNode | Zk::NodeExists)
                    | (Step::Layout, Zk::NodeExists | Zk::BadVersion | Zk::NoNode)
                    | (Step::Prune, Zk::NoNode) => Err(Failed::Retry),
                    // The canary changed since read: a new canary reads
                    // again; a promote does not promote what it did not read.
                    (Step::Canary, Zk::BadVersion | Zk::NoNode | Zk::NodeExists) if what == "canary" => {
                        Err(Failed::Retry)
                    }
                    (Step::Canary, Zk::BadVersion | Zk::NoNode) => Err(Failed::Fail(Error::Contention {
                        path: path.into(),
                        during: "its canary while it was being promoted (changed or aborted meanwhile; read it again)",
                        attempts: 1,
                    })),
                    // A record node of ours deleted by another client
                    // (`history` under an entry): made again on the next read.
                    (Step::Record, Zk::NoNode) => Err(Failed::Retry),
                    _ => Err(Failed::Fail(Error::from_zk(op, &node, source))),
                }
            }
        }
    }
}

/// A history entry: the header line, then the value's exact bytes.
pub(super) fn entry_bytes(path: &str, header: &Header, value: &[u8]) -> Result<Vec<u8>> {
    let mut entry =
        serde_json::to_vec(header).map_err(|e| Error::Data { path: path.into(), reason: e.to_string() })?;
    entry.push(b'\n');
    entry.extend_from_slice(value);
    Ok(entry)
}

pub(super) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
