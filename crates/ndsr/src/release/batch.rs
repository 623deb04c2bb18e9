//! Applying many nodes at once (configuration as code): every node's
//! write, its history entry and the removal of its oldest entry, and every
//! delete, in one `multi` that checks each node's version from the plan.
//! All of it, or nothing.

use std::collections::HashSet;

use futures::StreamExt;
use zookeeper_client::{Acls, CreateMode, Error as Zk, MultiWriteError, MultiWriteResult};

use super::txn::{entry_bytes, Step, Txn};
use super::{Header, Operation, MAX_MESSAGE};
use crate::acl::Acl;
use crate::{Error, Registry, Result};

/// One node of a batch (see [`Registry::apply_batch`]).
#[derive(Debug, Clone, Copy)]
pub struct BatchStep<'a> {
    /// The node.
    pub path: &'a str,
    /// What to do with it.
    pub change: BatchChange<'a>,
    /// The node's version the step was planned against (`-1`: it must not
    /// exist).
    pub expected_version: i32,
}

/// What a [`BatchStep`] does.
#[derive(Debug, Clone, Copy)]
pub enum BatchChange<'a> {
    /// Write these bytes (as an `apply` release, with its history entry).
    Write(&'a [u8]),
    /// Write these bytes, as `Write`; a node the step creates gets `acl`
    /// instead of the registry's ACL, in the same transaction (an existing
    /// node's ACL is left alone).
    WriteWithAcl {
        /// The bytes.
        bytes: &'a [u8],
        /// The ACL of a node created.
        acl: &'a [Acl],
    },
    /// Delete the node (its history stays).
    Delete,
}

impl<'a> BatchChange<'a> {
    /// The bytes a write writes (`None`: a delete).
    fn bytes(self) -> Option<&'a [u8]> {
        match self {
            BatchChange::Write(bytes) | BatchChange::WriteWithAcl { bytes, .. } => Some(bytes),
            BatchChange::Delete => None,
        }
    }
}

/// What a step did: the version written, or `None` for a delete.
pub type BatchResult = Vec<Option<i32>>;

impl Registry {
    /// Applies `steps` in one ZooKeeper transaction: each write as an
    /// `apply` release of its node (the value, its history entry, the
    /// oldest entry beyond `history_keep` removed, the schema's version
    /// checked), each delete of a node, every node checked against the
    /// version it was planned at. Either every step is done or none.
    /// The missing parents of a new node up to the nearest ancestor the
    /// batch creates are made in the transaction; with no such ancestor,
    /// they are made before it. Steps apply in the order given (a parent's
    /// create before its children's).
    ///
    /// # Errors
    /// - [`Error::VersionConflict`] naming the first node that is not at
    ///   its planned version (checked before sending, and by the
    ///   transaction).
    /// - [`Error::Invalid`] when a value does not fit its node's schema
    ///   (bytes that are not JSON where there is one).
    /// - [`Error::DataTooLarge`] when the batch does not fit one request:
    ///   split it.
    /// - [`Error::Conflict`] for a node that is ephemeral (a registration):
    ///   never written nor deleted.
    /// - [`Error::InvalidArgument`] for a path given twice or a message
    ///   over 4 KiB; [`Error::Contention`] when a schema or a history
    ///   changed meanwhile (plan again); others as
    ///   [`publish`](Self::publish).
    pub async fn apply_batch(&self, steps: &[BatchStep<'_>], message: &str) -> Result<BatchResult> {
        self.check_writable("apply")?;
        if message.len() > MAX_MESSAGE {
            return Err(Error::InvalidArgument("a release message is at most 4 KiB"));
        }
        let mut seen = HashSet::new();
        for step in steps {
            self.check_config_path(step.path)?;
            if !seen.insert(step.path) {
                return Err(Error::InvalidArgument("a batch names a node twice"));
            }
            if let Some(bytes) = step.change.bytes() {
                let limit = self.shared.config.max_data_size;
                if bytes.len() > limit {
                    return Err(Error::DataTooLarge { path: step.path.into(), size: bytes.len(), limit });
                }
            }
        }
        if steps.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.config_client().await?;
        // What each node and its records are now, read a few dozen at a time.
        let reads = futures::stream::iter(steps.iter().map(|step| {
            let client = client.clone();
            async move { self.read_found(&client, &self.layout(step.path), step.path).await }
        }))
        .buffered(32)
        .collect::<Vec<_>>()
        .await;
        let mut found = Vec::with_capacity(steps.len());
        for read in reads {
            found.push(read?);
        }
        for (step, found) in steps.iter().zip(&found) {
            // Never an ephemeral node (a registration), whatever its version.
            if let Some(owner) = found.live.as_ref().map(|s| s.ephemeral_owner).filter(|o| *o != 0) {
                return Err(Error::Conflict { path: step.path.into(), owner });
            }
            let current = found.live.as_ref().map(|s| s.version);
            if current != (step.expected_version >= 0).then_some(step.expected_version) {
                return Err(Error::VersionConflict {
                    path: step.path.into(),
                    expected: step.expected_version,
                    current,
                });
            }
        }

        let mut txn = Txn::new(&client, self.acl_size());
        let persistent = self.shared.create_options(CreateMode::Persistent);
        let sequential = self.shared.create_options(CreateMode::PersistentSequential);
        let created: HashSet<&str> = steps
            .iter()
            .filter(|s| s.change.bytes().is_some() && s.expected_version < 0)
            .map(|s| s.path)
            .collect();
        let mut parents = Vec::new();
        let mut made_in_txn: HashSet<String> = HashSet::new();
        let mut any_layout = false;
        for (step, found) in steps.iter().zip(&found) {
            let layout = self.layout(step.path);
            let Some(bytes) = step.change.bytes() else {
                txn.delete_at(Step::Live, step.path, step.expected_version)?;
                continue;
            };
            let value = serde_json::from_slice(bytes).ok();
            let schema_version = match &found.schema {
                Some((schema, stat)) => self
                    .check_schema_of(step.path, schema, stat.mzxid, value.as_ref())?
                    .then_some(stat.version),
                None => None,
            };
            any_layout |= !found.meta;
            if found.live.is_none() {
                // The parents up to the nearest ancestor this batch creates
                // are made in the transaction (they cannot exist yet); with
                // no such ancestor, they are made before it.
                let mut gap = Vec::new();
                let mut at = crate::path::parent(step.path);
                while let Some(dir) = at.filter(|p| *p != "/") {
                    if created.contains(dir) {
                        break;
                    }
                    gap.push(dir);
                    at = crate::path::parent(dir);
                }
                match at.filter(|p| *p != "/") {
                    Some(_) => {
                        for dir in gap.into_iter().rev() {
                            if made_in_txn.insert(dir.to_string()) {
                                txn.create(Step::Layout, dir, b"", &persistent)?;
                            }
                        }
                    }
                    None => {
                        if let Some(parent) = crate::path::parent(step.path).filter(|p| *p != "/") {
                            parents.push(parent.to_string());
                        }
                    }
                }
            }
            let current = found.live.as_ref().map(|s| s.version);
            let header = Header {
                version: current.map_or(0, |v| v + 1),
                from_version: current,
                node_czxid: found.live.as_ref().map(|s| s.czxid),
                schema_version,
                ..self.entry_header(step.path, Operation::Apply, bytes, message)
            };
            let entry = entry_bytes(step.path, &header, bytes)?;
            self.add_layout(&mut txn, &layout, step.path, found, b"")?;
            if let Some((_, stat)) = &found.schema {
                txn.check(Step::Schema, &layout.schema, stat.version)?;
            }
            match &found.live {
                Some(stat) => txn.set(Step::Live, step.path, bytes, stat.version)?,
                None => match step.change {
                    BatchChange::WriteWithAcl { acl, .. } => {
                        let options = CreateMode::Persistent.with_acls(Acls::new(acl));
                        txn.create(Step::Live, step.path, bytes, &options)?
                    }
                    _ => txn.create(Step::Live, step.path, bytes, &persistent)?,
                },
            }
            let names = found.history.as_deref().unwrap_or_default();
            txn.record(&layout.history, "r-", &entry, names, self.shared.config.history_keep, &sequential)?;
        }
        txn.fits(steps[0].path, self.shared.config.max_request_size)?;
        if any_layout {
            self.ensure(&client, &self.layout(steps[0].path).dir).await?;
        }
        for parent in parents {
            self.ensure(&client, &parent).await?;
        }
        for step in steps {
            self.known.take(step.path);
        }

        let what = |index: usize| txn.steps.get(index).cloned();
        let requests = &self.shared.requests;
        requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sent = tokio::time::timeout(self.shared.op_timeout(), txn.multi.commit()).await;
        let failed = match sent {
            Ok(Ok(results)) => {
                let mut out = Vec::with_capacity(steps.len());
                let mut written =
                    results.iter().zip(&txn.steps).filter(|(_, (step, _, _))| *step == Step::Live);
                for step in steps {
                    let Some((result, _)) = written.next() else { break };
                    out.push(match (step.change, result) {
                        (BatchChange::Delete, _) => None,
                        (_, MultiWriteResult::SetData { stat }) => Some(stat.version),
                        _ => Some(0),
                    });
                }
                return Ok(out);
            }
            Err(_) => return Err(Error::OutcomeUnknown { op: "apply", path: steps[0].path.into() }),
            Ok(Err(MultiWriteError::RequestFailed { source })) => match source {
                Zk::ConnectionLoss | Zk::Timeout | Zk::SessionExpired => {
                    return Err(Error::OutcomeUnknown { op: "apply", path: steps[0].path.into() })
                }
                other => return Err(Error::from_zk("multi", steps[0].path, other)),
            },
            Ok(Err(MultiWriteError::OperationFailed { index, source })) => (what(index), source),
        };
        let (Some((step, op, node)), source) = failed else {
            return Err(Error::from_zk("multi", steps[0].path, failed.1));
        };
        match (step, &source) {
            (_, Zk::NoAuth) => Err(Error::NotAuthorized { op, path: node }),
            (Step::Live, Zk::BadVersion | Zk::NoNode | Zk::NodeExists) => {
                let expected = steps.iter().find(|s| s.path == node).map_or(-1, |s| s.expected_version);
                let current =
                    self.shared.call("exists", &node, client.check_stat(&node)).await?.map(|s| s.version);
                if current == (expected >= 0).then_some(expected) {
                    // The node is as planned: its parent went meanwhile.
                    return Err(Error::Contention {
                        path: node,
                        during: "while a batch was applied (its parent was removed): plan again",
                        attempts: 1,
                    });
                }
                Err(Error::VersionConflict { path: node, expected, current })
            }
            (Step::Live, Zk::NotEmpty) => Err(Error::NotEmpty { path: node }),
            (Step::Schema | Step::Layout | Step::Prune | Step::Record, _) => Err(Error::Contention {
                path: node,
                during: "while a batch was applied (a schema or a history changed): plan again",
                attempts: 1,
            }),
            _ => Err(Error::from_zk(op, &node, source)),
        }
    }
}
