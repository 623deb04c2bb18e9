//! Writing releases and schemas: each in one `multi` with its record.

use serde_json::Value;
use zookeeper_client::{Client, CreateMode, Error as Zk, MultiWriteError, MultiWriteResult, Stat};

use super::history::{self, History};
use super::schema::{compile, violations};
use super::{
    diff, host_name, sha256_hex, Change, Header, Layout, Operation, PublishOptions, Release, SchemaChange,
    SchemaInfo, Violation, ENTRY_FORMAT, MAX_MESSAGE,
};
use crate::path::validate_path;
use crate::{Error, Registry, Result};

/// What a step of a transaction is, to name the step that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
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
}

/// A transaction being built, with what each step is and where.
struct Txn<'c> {
    multi: zookeeper_client::MultiWriter<'c>,
    steps: Vec<(Step, &'static str, String)>,
    size: usize,
    acl: usize,
}

impl<'c> Txn<'c> {
    fn new(client: &'c Client, acl: usize) -> Self {
        Txn { multi: client.new_multi_writer(), steps: Vec::new(), size: 64, acl }
    }

    fn push(
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

    fn create(
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

    fn set(&mut self, step: Step, path: &str, data: &[u8], version: i32) -> Result<()> {
        self.size += data.len();
        let added = self.multi.add_set_data(path, data, Some(version));
        self.push(step, "set_data", path, added)
    }

    fn check(&mut self, step: Step, path: &str, version: i32) -> Result<()> {
        let added = self.multi.add_check_version(path, version);
        self.push(step, "check", path, added)
    }

    fn delete(&mut self, step: Step, path: &str) -> Result<()> {
        let added = self.multi.add_delete(path, None);
        self.push(step, "delete", path, added)
    }
}

/// What is read before a write: one round trip, pipelined.
#[derive(Clone)]
pub(crate) struct Found {
    live: Option<Stat>,
    meta: bool,
    schema: Option<(Vec<u8>, Stat)>,
    history: Option<Vec<String>>,
    audit: Option<Vec<String>>,
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

    fn take(&self, path: &str) -> Option<Found> {
        self.paths.lock().unwrap_or_else(|e| e.into_inner()).remove(path)
    }

    fn put(&self, path: &str, found: Found) {
        let mut paths = self.paths.lock().unwrap_or_else(|e| e.into_inner());
        if paths.len() >= KNOWN_PATHS {
            paths.clear();
        }
        paths.insert(path.to_string(), found);
    }
}

/// A release to write.
struct Plan<'a> {
    path: &'a str,
    bytes: &'a [u8],
    /// The value as JSON (`None`: bytes that are not JSON, which only
    /// `apply` writes, and only where there is no schema).
    value: Option<Value>,
    op: Operation,
    options: &'a PublishOptions,
    rollback_of: Option<i32>,
}

/// How a failed transaction ends: retried after a fresh read, or failed.
enum Failed {
    Retry,
    Fail(Error),
}

impl Registry {
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

    /// Publishes `value` (JSON bytes, written exactly as given) as the new
    /// value of the configuration node `path`, recorded in its history in
    /// the same transaction (see [`release`](crate::release)). The value is
    /// checked against the path's schema, if it has one, before anything
    /// is sent, and the schema's version is checked in the transaction.
    /// Missing parents of `path` are created.
    ///
    /// # Errors
    /// - [`Error::Data`] when `value` is not JSON; [`Error::Invalid`] when
    ///   it does not fit the schema (every violation listed);
    ///   [`Error::VersionConflict`] when
    ///   [`if_version`](PublishOptions::if_version) does not match.
    /// - [`Error::InvalidPath`] for `/` or a path under the
    ///   [`config_root`](crate::RegistryBuilder::config_root);
    ///   [`Error::InvalidArgument`] for a message over 4 KiB;
    ///   [`Error::DataTooLarge`] when the value does not fit one request
    ///   twice (it travels in the live node and in its history entry);
    ///   [`Error::ReadOnly`].
    /// - [`Error::Contention`] when other writers kept changing the node
    ///   or its records through every attempt; [`Error::OutcomeUnknown`]
    ///   when the connection was lost with the transaction sent (it was
    ///   applied whole or not at all: read the history to know).
    ///
    /// In every error case but the last, neither the value nor a record
    /// was written (missing parents of a new node, made first, may stay).
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn demo(registry: ndsr::Registry) -> ndsr::Result<()> {
    /// use ndsr::release::PublishOptions;
    /// let release = registry
    ///     .publish("/config/web", br#"{"pool": 20}"#, PublishOptions::message("more connections"))
    ///     .await?;
    /// println!("version {}", release.version);
    /// # Ok(()) }
    /// ```
    pub async fn publish(&self, path: &str, value: &[u8], options: PublishOptions) -> Result<Release> {
        let parsed = self.check_release(path, value, &options)?;
        let plan = Plan {
            path,
            bytes: value,
            value: Some(parsed),
            op: Operation::Publish,
            options: &options,
            rollback_of: None,
        };
        self.write_release(plan).await
    }

    /// [`publish`](Self::publish) of a JSON value, written compact.
    ///
    /// # Errors
    /// As [`publish`](Self::publish).
    pub async fn publish_value(&self, path: &str, value: &Value, options: PublishOptions) -> Result<Release> {
        let bytes = serde_json::to_vec(value)
            .map_err(|e| Error::Data { path: path.to_string(), reason: e.to_string() })?;
        self.publish(path, &bytes, options).await
    }

    /// Writes `value` (any bytes) to `path` as an `apply` release: what
    /// configuration as code (`ndsr apply`) writes. As
    /// [`publish`](Self::publish), with its history entry, schema check and
    /// compare-and-set, except that bytes that are not JSON are written too
    /// where the path has no schema (a schema refuses them).
    ///
    /// # Errors
    /// As [`publish`](Self::publish), but for [`Error::Data`].
    pub async fn apply_value(&self, path: &str, value: &[u8], options: PublishOptions) -> Result<Release> {
        let parsed = match self.check_release(path, value, &options) {
            Ok(parsed) => Some(parsed),
            Err(Error::Data { .. }) => None,
            Err(e) => return Err(e),
        };
        let plan = Plan {
            path,
            bytes: value,
            value: parsed,
            op: Operation::Apply,
            options: &options,
            rollback_of: None,
        };
        self.write_release(plan).await
    }

    /// Publishes the value of release `to_version` again, as a new
    /// release whose history entry says so: the exact bytes come back.
    /// Checked against the schema as any publish is.
    ///
    /// # Errors
    /// [`Error::NotInHistory`] (listing the versions there) when the
    /// history holds no trusted release of `to_version`; otherwise as
    /// [`publish`](Self::publish).
    pub async fn rollback(&self, path: &str, to_version: i32, options: PublishOptions) -> Result<Release> {
        self.check_release(path, b"{}", &options)?;
        let history = self.history(path).await?;
        let entry = history.release(to_version).ok_or_else(|| Error::NotInHistory {
            path: path.to_string(),
            version: to_version,
            available: history.versions(),
        })?;
        // An applied value may not be JSON: it comes back as it was.
        let value = match self.check_release(path, &entry.value, &options) {
            Ok(value) => Some(value),
            Err(Error::Data { .. }) => None,
            Err(e) => return Err(e),
        };
        let plan = Plan {
            path,
            bytes: &entry.value,
            value,
            op: Operation::Rollback,
            options: &options,
            rollback_of: Some(to_version),
        };
        self.write_release(plan).await
    }

    /// Records the live value of `path` as an `external` release when it
    /// was written outside ndsr (the original, zkCli, kazoo): the bytes as
    /// read now, in a transaction that checks the node is still at the
    /// version read, so what is recorded is what that version holds. A gap
    /// the value was overwritten in before it was seen stays a gap.
    /// Returns `None` when the live value is already recorded (or the node
    /// does not exist). Not checked against the schema: it is already
    /// written; readers judge it.
    ///
    /// # Errors
    /// As [`publish`](Self::publish), but for the schema and the JSON.
    pub async fn record_external(&self, path: &str) -> Result<Option<Release>> {
        self.check_writable("record_external")?;
        self.check_config_path(path)?;
        let layout = self.layout(path);
        let client = self.config_client().await?;
        let attempts = self.shared.config.reconcile_attempts;
        self.known.take(path);
        for _ in 0..attempts {
            // The history node's version before its entries are read: the
            // transaction holds if no recorder wrote since.
            let dir = self.shared.call("exists", &layout.history, client.check_stat(&layout.history)).await?;
            let history = history::read(&self.shared, &client, &layout, path).await?;
            let (bytes, stat) = match self.shared.call("get_data", path, client.get_data(path)).await {
                Ok(read) => read,
                Err(e) if e.is_no_node() => return Ok(None),
                Err(e) => return Err(e),
            };
            if history.releases().any(|e| e.version == stat.version && e.node_czxid == stat.czxid) {
                return Ok(None);
            }
            let found = self.read_found(&client, &layout, path).await?;
            if !found.meta {
                self.ensure(&client, &layout.dir).await?;
            }
            let header = Header {
                format: ENTRY_FORMAT.into(),
                v: 1,
                path: path.into(),
                op: Operation::External,
                version: stat.version,
                from_version: None,
                node_czxid: Some(stat.czxid),
                sha256: sha256_hex(&bytes),
                size: bytes.len(),
                author: self.shared.config.author_or_default(),
                host: host_name().to_string(),
                time: now(),
                message: "seen written outside ndsr".into(),
                schema_version: None,
                rollback_of: None,
            };
            let mut entry = serde_json::to_vec(&header)
                .map_err(|e| Error::Data { path: path.into(), reason: e.to_string() })?;
            entry.push(b'\n');
            entry.extend_from_slice(&bytes);
            let mut txn = Txn::new(&client, self.acl_size());
            self.add_layout(&mut txn, &layout, path, &found, b"")?;
            txn.check(Step::Live, path, stat.version)?;
            // Two recorders of the same version (two agents) race: the
            // history node's own version serializes them (a publish does
            // not touch it; its entry's version check does the same).
            if let (Some(dir), true) = (&dir, found.history.is_some()) {
                txn.set(Step::Layout, &layout.history, b"", dir.version)?;
            }
            let sequential = self.shared.create_options(CreateMode::PersistentSequential);
            txn.create(Step::Record, &format!("{}/r-", layout.history), &entry, &sequential)?;
            let names = found.history.as_deref().unwrap_or_default();
            let over = (names.len() + 1).saturating_sub(self.shared.config.history_keep);
            for name in names.iter().take(over) {
                txn.delete(Step::Prune, &format!("{}/{name}", layout.history))?;
            }
            let limit = self.shared.config.max_request_size;
            if txn.size > limit {
                return Err(Error::DataTooLarge { path: path.into(), size: txn.size, limit });
            }
            match self.commit(txn, "record_external", path, None).await {
                Ok((results, _)) => {
                    let entry = results.into_iter().find_map(|r| match r {
                        MultiWriteResult::Create { path: made, .. } if made.contains("/history/r-") => {
                            Some(made.rsplit('/').next().unwrap_or_default().to_string())
                        }
                        _ => None,
                    });
                    return Ok(Some(Release {
                        path: path.into(),
                        version: stat.version,
                        previous_version: None,
                        entry: entry.unwrap_or_default(),
                        sha256: header.sha256,
                    }));
                }
                // The node moved on: what is live now is recorded instead.
                Err(Failed::Retry) => continue,
                Err(Failed::Fail(e)) => return Err(e),
            }
        }
        Err(Error::Contention {
            path: path.into(),
            during: "while its outside write was being recorded",
            attempts,
        })
    }

    /// The history of the configuration node `path`: its releases, oldest
    /// first, with the versions written outside ndsr shown as gaps and
    /// entries tampered with shown as such.
    ///
    /// # Errors
    /// [`Error::InvalidPath`], [`Error::NoConnection`], [`Error::NotAuthorized`].
    pub async fn history(&self, path: &str) -> Result<History> {
        self.check_config_path(path)?;
        let layout = self.layout(path);
        let client = self.config_client().await?;
        history::read(&self.shared, &client, &layout, path).await
    }

    /// The changes from release `from` to release `to` of `path`, where
    /// `None` is the live value: a JSON-aware diff (see
    /// [`release::diff`](crate::release::diff)). A value that is not JSON
    /// is compared as one string.
    ///
    /// # Errors
    /// [`Error::NotInHistory`] for a version the history does not hold;
    /// otherwise as [`history`](Self::history).
    pub async fn config_diff(&self, path: &str, from: Option<i32>, to: Option<i32>) -> Result<Vec<Change>> {
        let history = self.history(path).await?;
        let live = if from.is_none() || to.is_none() {
            let client = self.config_client().await?;
            match self.shared.call("get_data", path, client.get_data(path)).await {
                Ok((bytes, _)) => bytes,
                Err(e) if e.is_no_node() => b"null".to_vec(),
                Err(e) => return Err(e),
            }
        } else {
            Vec::new()
        };
        let value_of = |version: Option<i32>| -> Result<Value> {
            let bytes = match version {
                Some(v) => {
                    &history
                        .release(v)
                        .ok_or_else(|| Error::NotInHistory {
                            path: path.to_string(),
                            version: v,
                            available: history.versions(),
                        })?
                        .value
                }
                None => &live,
            };
            Ok(serde_json::from_slice(bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned())))
        };
        let (a, b) = (value_of(from)?, value_of(to)?);
        Ok(diff(&a, &b))
    }

    /// The JSON Schema of the configuration node `path`, if it has one.
    ///
    /// # Errors
    /// As [`history`](Self::history); [`Error::SchemaInvalid`] when the
    /// stored schema is not JSON.
    pub async fn schema(&self, path: &str) -> Result<Option<SchemaInfo>> {
        self.check_config_path(path)?;
        let layout = self.layout(path);
        let client = self.config_client().await?;
        match self.shared.call("get_data", &layout.schema, client.get_data(&layout.schema)).await {
            Ok((bytes, _)) if bytes.is_empty() => Ok(None),
            Ok((bytes, stat)) => {
                let schema = serde_json::from_slice(&bytes).map_err(|e| Error::SchemaInvalid {
                    path: path.to_string(),
                    reason: format!("the stored schema is not JSON ({e})"),
                })?;
                Ok(Some(SchemaInfo { schema, version: stat.version }))
            }
            Err(e) if e.is_no_node() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Checks `value` against the schema of `path` without writing
    /// anything: what a publish of it would say.
    ///
    /// # Errors
    /// [`Error::Data`] when it is not JSON, [`Error::Invalid`] when it does
    /// not fit; otherwise as [`schema`](Self::schema).
    pub async fn validate_config(&self, path: &str, value: &[u8]) -> Result<()> {
        let parsed = parse_json(path, value)?;
        let layout = self.layout(path);
        self.check_config_path(path)?;
        let client = self.config_client().await?;
        match self.shared.call("get_data", &layout.schema, client.get_data(&layout.schema)).await {
            Ok((bytes, stat)) => self.check_schema(path, &bytes, stat.mzxid, &parsed).map(drop),
            Err(e) if e.is_no_node() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Sets the JSON Schema (draft 2020-12) of the configuration node
    /// `path`: every later write through ndsr is checked against it. The
    /// change is recorded in the path's audit trail, and checked in the
    /// same transaction against the live node's version, so no write slips
    /// between the check of the live value and the schema.
    ///
    /// # Errors
    /// [`Error::SchemaInvalid`] when `schema` is not a usable schema;
    /// [`Error::Invalid`] when the live value does not fit it and `force`
    /// is false (with `force`, the violations are returned and recorded);
    /// otherwise as [`publish`](Self::publish). On error neither the schema
    /// nor a record is written.
    pub async fn set_schema(&self, path: &str, schema: &Value, force: bool) -> Result<SchemaChange> {
        self.check_config_path(path)?;
        self.check_writable("set_schema")?;
        let validator = compile(path, schema)?;
        let bytes = serde_json::to_vec(schema)
            .map_err(|e| Error::Data { path: path.into(), reason: e.to_string() })?;
        self.write_schema(path, &bytes, Some(&validator), force).await
    }

    /// Removes the schema of `path` (recorded in its audit trail).
    ///
    /// # Errors
    /// As [`set_schema`](Self::set_schema).
    pub async fn remove_schema(&self, path: &str) -> Result<SchemaChange> {
        self.check_config_path(path)?;
        self.check_writable("remove_schema")?;
        self.write_schema(path, b"", None, false).await
    }

    pub(super) fn layout(&self, path: &str) -> Layout {
        Layout::new(&self.shared.config.config_root, path)
    }

    /// Refuses `/` and paths under the configuration root.
    fn check_config_path(&self, path: &str) -> Result<()> {
        validate_path(path)?;
        let root = self.shared.config.config_root.trim_end_matches('/');
        let bad = |reason| Err(Error::InvalidPath { path: path.to_string(), reason });
        if path == "/" {
            return bad("the root cannot be a configuration node");
        }
        if path == root || path.strip_prefix(root).is_some_and(|rest| rest.starts_with('/')) {
            return bad("it is under the configuration root, which holds histories and schemas");
        }
        Ok(())
    }

    /// Checks what can be checked before any call; returns the parsed value.
    fn check_release(&self, path: &str, value: &[u8], options: &PublishOptions) -> Result<Value> {
        self.check_writable("publish")?;
        self.check_config_path(path)?;
        if options.message.len() > MAX_MESSAGE {
            return Err(Error::InvalidArgument("a release message is at most 4 KiB"));
        }
        if options.if_version.is_some_and(|v| v < -1) {
            return Err(Error::InvalidArgument("if_version is a node version, or -1 for 'must not exist'"));
        }
        let limit = self.shared.config.max_data_size;
        if value.len() > limit {
            return Err(Error::DataTooLarge { path: path.to_string(), size: value.len(), limit });
        }
        parse_json(path, value)
    }

    /// Validates `value` against the schema node's bytes; the schema
    /// version to record (`None`: no schema).
    /// As [`check_schema`](Self::check_schema), for a value that may not
    /// be JSON: refused by any schema.
    fn check_schema_of(&self, path: &str, schema: &[u8], mzxid: i64, value: Option<&Value>) -> Result<bool> {
        match value {
            Some(value) => self.check_schema(path, schema, mzxid, value),
            None if schema.is_empty() => Ok(false),
            None => Err(Error::Invalid {
                path: path.to_string(),
                version: None,
                violations: vec![Violation { pointer: String::new(), message: "not JSON".into() }],
            }),
        }
    }

    fn check_schema(&self, path: &str, schema: &[u8], mzxid: i64, value: &Value) -> Result<bool> {
        match self.schemas.get(path, schema, mzxid)? {
            None => Ok(false),
            Some(validator) => {
                let found = violations(&validator, value);
                if found.is_empty() {
                    Ok(true)
                } else {
                    Err(Error::Invalid { path: path.to_string(), version: None, violations: found })
                }
            }
        }
    }

    async fn read_found(&self, client: &Client, layout: &Layout, path: &str) -> Result<Found> {
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
    async fn ensure(&self, client: &Client, path: &str) -> Result<()> {
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
    fn add_layout(
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

    fn acl_size(&self) -> usize {
        self.shared.acl.iter().map(|a| 16 + a.scheme().len() + a.id().len()).sum()
    }

    async fn write_release(&self, plan: Plan<'_>) -> Result<Release> {
        let path = plan.path;
        let layout = self.layout(path);
        let client = self.config_client().await?;
        let attempts = self.shared.config.reconcile_attempts;
        // The first attempt goes on what the last release left, if known;
        // any failure reads afresh. A failed guess is not an attempt.
        let mut known = self.known.take(path);
        let mut tried = 0;
        while tried < attempts {
            let guessed = known.is_some();
            let found = match known.take() {
                Some(found) => found,
                None => {
                    tried += 1;
                    self.read_found(&client, &layout, path).await?
                }
            };
            let current = found.live.as_ref().map(|s| s.version);
            if let Some(expected) = plan.options.if_version {
                if current != (expected >= 0).then_some(expected) {
                    if guessed {
                        continue;
                    }
                    return Err(Error::VersionConflict { path: path.into(), expected, current });
                }
            }
            let schema_version = match &found.schema {
                Some((bytes, stat)) => {
                    match self.check_schema_of(path, bytes, stat.mzxid, plan.value.as_ref()) {
                        Ok(has) => has.then_some(stat.version),
                        // Refused by a schema that may have changed since: judge
                        // by the one stored now.
                        Err(_) if guessed => continue,
                        Err(e) => return Err(e),
                    }
                }
                None => None,
            };
            let guessed_life = found.live.as_ref().map(|s| s.czxid);
            let header = Header {
                format: ENTRY_FORMAT.into(),
                v: 1,
                path: path.into(),
                op: plan.op,
                version: current.map_or(0, |v| v + 1),
                from_version: current,
                node_czxid: guessed_life,
                sha256: sha256_hex(plan.bytes),
                size: plan.bytes.len(),
                author: self.shared.config.author_or_default(),
                host: host_name().to_string(),
                time: now(),
                message: plan.options.message.clone(),
                schema_version,
                rollback_of: plan.rollback_of,
            };
            let entry = entry_bytes(path, &header, plan.bytes)?;

            let mut txn = Txn::new(&client, self.acl_size());
            self.add_layout(&mut txn, &layout, path, &found, b"")?;
            if let Some((_, stat)) = &found.schema {
                txn.check(Step::Schema, &layout.schema, stat.version)?;
            }
            let persistent = self.shared.create_options(CreateMode::Persistent);
            match &found.live {
                Some(stat) => txn.set(Step::Live, path, plan.bytes, stat.version)?,
                None => txn.create(Step::Live, path, plan.bytes, &persistent)?,
            }
            let sequential = self.shared.create_options(CreateMode::PersistentSequential);
            txn.create(Step::Record, &format!("{}/r-", layout.history), &entry, &sequential)?;
            let names = found.history.as_deref().unwrap_or_default();
            let over = (names.len() + 1).saturating_sub(self.shared.config.history_keep);
            for name in names.iter().take(over) {
                txn.delete(Step::Prune, &format!("{}/{name}", layout.history))?;
            }
            // Checked before anything is made: a refused value leaves no
            // directory behind either.
            let limit = self.shared.config.max_request_size;
            if txn.size > limit {
                return Err(Error::DataTooLarge { path: path.into(), size: txn.size, limit });
            }
            if !found.meta {
                self.ensure(&client, &layout.dir).await?;
            }
            if found.live.is_none() {
                if let Some(parent) = crate::path::parent(path).filter(|p| *p != "/") {
                    self.ensure(&client, parent).await?;
                }
            }
            match self.commit(txn, "publish", path, plan.options.if_version).await {
                Ok((results, steps)) => {
                    let mut version = 0;
                    let mut entry_name = String::new();
                    let mut live = None;
                    for (result, (step, _, _)) in results.into_iter().zip(steps) {
                        match (step, result) {
                            (Step::Live, MultiWriteResult::SetData { stat }) => {
                                self.shared.saw_zxid(stat.mzxid);
                                version = stat.version;
                                live = Some(stat);
                            }
                            (Step::Record, MultiWriteResult::Create { path: made, .. }) => {
                                entry_name = made.rsplit('/').next().unwrap_or_default().to_string();
                            }
                            _ => {}
                        }
                    }
                    if let Some(live) = live.filter(|l| Some(l.czxid) != guessed_life) {
                        // The node was deleted and made again at the same
                        // version since it was read (nothing in a multi
                        // can check a node's life): the entry names the
                        // wrong life. Corrected, and nothing is guessed.
                        entry_name =
                            self.correct_life(&client, &layout, &entry_name, header, plan.bytes, live).await;
                    } else if let (Some(live), Some(mut names)) = (live, found.history) {
                        // What the next release of the path can go on. Not
                        // after a create: its stat may be invalid (ZOOKEEPER-4026).
                        names.drain(..over.min(names.len()));
                        names.push(entry_name.clone());
                        let next = Found {
                            live: Some(live),
                            meta: true,
                            schema: found.schema,
                            history: Some(names),
                            audit: found.audit,
                        };
                        self.known.put(path, next);
                    }
                    return Ok(Release {
                        path: path.into(),
                        version,
                        previous_version: current,
                        entry: entry_name,
                        sha256: sha256_hex(plan.bytes),
                    });
                }
                Err(Failed::Retry) => continue,
                Err(Failed::Fail(e)) => return Err(e),
            }
        }
        Err(Error::Contention { path: path.into(), during: "while being published", attempts })
    }

    /// Replaces an entry that names the wrong life of the node with one
    /// that names `live`'s, while the node is still at that version; if it
    /// has moved on, removes the entry (the version then shows as not
    /// recorded rather than recorded wrong). Best effort: said at WARN.
    /// Returns the entry's name now (empty when it was removed).
    async fn correct_life(
        &self,
        client: &Client,
        layout: &Layout,
        entry_name: &str,
        mut header: Header,
        value: &[u8],
        live: Stat,
    ) -> String {
        let path = header.path.clone();
        header.node_czxid = Some(live.czxid);
        let wrong = format!("{}/{entry_name}", layout.history);
        let sequential = self.shared.create_options(CreateMode::PersistentSequential);
        let fixed = async {
            // The history node's version, as `record_external` sets it: a
            // recorder that saw the new life unrecorded meanwhile wins, and
            // the wrong entry is then only removed.
            let dir = self.shared.call("exists", &layout.history, client.check_stat(&layout.history)).await?;
            let Some(dir) = dir else { return Ok(None) };
            let entry = entry_bytes(&path, &header, value)?;
            let mut txn = Txn::new(client, self.acl_size());
            txn.check(Step::Live, &path, live.version)?;
            txn.set(Step::Layout, &layout.history, b"", dir.version)?;
            txn.delete(Step::Prune, &wrong)?;
            txn.create(Step::Record, &format!("{}/r-", layout.history), &entry, &sequential)?;
            match self.commit(txn, "publish", &path, None).await {
                Ok((results, _)) => Ok(results.into_iter().find_map(|r| match r {
                    MultiWriteResult::Create { path: made, .. } => {
                        Some(made.rsplit('/').next().unwrap_or_default().to_string())
                    }
                    _ => None,
                })),
                Err(Failed::Retry) => Ok(None),
                Err(Failed::Fail(e)) => Err(e),
            }
        };
        let outcome = match fixed.await {
            Ok(Some(name)) => Ok(("corrected", name)),
            Ok(None) => match self.shared.call("delete", &wrong, client.delete(&wrong, None)).await {
                Ok(()) => {
                    Ok(("removed (the node has moved on, or another recorder recorded it)", String::new()))
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match outcome {
            Ok((what, name)) => {
                tracing::warn!(
                    path,
                    entry = entry_name,
                    "the node was re-created outside ndsr at the version read; its entry {what}"
                );
                name
            }
            Err(e) => {
                tracing::warn!(path, entry = entry_name, "the node was re-created outside ndsr at the version read, and its entry names the old life: {e}");
                entry_name.to_string()
            }
        }
    }

    async fn write_schema(
        &self,
        path: &str,
        bytes: &[u8],
        validator: Option<&jsonschema::Validator>,
        force: bool,
    ) -> Result<SchemaChange> {
        let layout = self.layout(path);
        let client = self.config_client().await?;
        let attempts = self.shared.config.reconcile_attempts;
        self.known.take(path);
        for _ in 0..attempts {
            let found = self.read_found(&client, &layout, path).await?;
            let mut forced_over: Vec<Violation> = Vec::new();
            if let (Some(validator), Some(live)) = (validator, &found.live) {
                let (value, _) = match self.shared.call("get_data", path, client.get_data(path)).await {
                    Ok(read) => read,
                    Err(e) if e.is_no_node() => continue,
                    Err(e) => return Err(e),
                };
                let found_violations = match serde_json::from_slice::<Value>(&value) {
                    Ok(value) => violations(validator, &value),
                    Err(e) => vec![Violation { pointer: String::new(), message: format!("not JSON ({e})") }],
                };
                if !found_violations.is_empty() && !force {
                    return Err(Error::Invalid {
                        path: path.into(),
                        version: Some(live.version),
                        violations: found_violations,
                    });
                }
                forced_over = found_violations;
            }
            if !found.meta {
                self.ensure(&client, &layout.dir).await?;
            }
            let record = serde_json::json!({
                "format": "ndsr-config-audit",
                "v": 1,
                "path": path,
                "op": if bytes.is_empty() { "remove_schema" } else { "set_schema" },
                "schema_sha256": sha256_hex(bytes),
                "live_version": found.live.as_ref().map(|s| s.version),
                "author": self.shared.config.author_or_default(),
                "host": host_name(),
                "time": now(),
                "forced_over": forced_over,
            });
            let mut txn = Txn::new(&client, self.acl_size());
            self.add_layout(&mut txn, &layout, path, &found, bytes)?;
            let mut version = 0;
            if let Some((_, stat)) = &found.schema {
                txn.set(Step::Schema, &layout.schema, bytes, stat.version)?;
                version = stat.version + 1;
            }
            if let Some(live) = &found.live {
                txn.check(Step::Live, path, live.version)?;
            }
            let sequential = self.shared.create_options(CreateMode::PersistentSequential);
            txn.create(
                Step::Record,
                &format!("{}/s-", layout.audit),
                record.to_string().as_bytes(),
                &sequential,
            )?;
            let names = found.audit.as_deref().unwrap_or_default();
            let over = (names.len() + 1).saturating_sub(self.shared.config.history_keep);
            for name in names.iter().take(over) {
                txn.delete(Step::Prune, &format!("{}/{name}", layout.audit))?;
            }
            let limit = self.shared.config.max_request_size;
            if txn.size > limit {
                return Err(Error::DataTooLarge { path: layout.schema, size: txn.size, limit });
            }
            match self.commit(txn, "set_schema", path, None).await {
                Ok(_) => {
                    if !forced_over.is_empty() {
                        tracing::warn!(
                            path,
                            violations = forced_over.len(),
                            "schema set by force over a live value that does not fit it"
                        );
                    }
                    return Ok(SchemaChange { version, forced_over });
                }
                Err(Failed::Retry) => continue,
                Err(Failed::Fail(e)) => return Err(e),
            }
        }
        Err(Error::Contention { path: path.into(), during: "while its schema was being set", attempts })
    }

    /// Sends a transaction under the operation timeout and says what its
    /// failure means: retry after a fresh read (another writer's change), or
    /// fail with the step that failed named.
    async fn commit(
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
fn entry_bytes(path: &str, header: &Header, value: &[u8]) -> Result<Vec<u8>> {
    let mut entry =
        serde_json::to_vec(header).map_err(|e| Error::Data { path: path.into(), reason: e.to_string() })?;
    entry.push(b'\n');
    entry.extend_from_slice(value);
    Ok(entry)
}

fn parse_json(path: &str, value: &[u8]) -> Result<Value> {
    serde_json::from_slice(value).map_err(|e| Error::Data {
        path: path.to_string(),
        reason: format!("a configuration value must be JSON: {e}"),
    })
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
