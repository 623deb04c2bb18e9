//! Writing releases: publish, apply and rollback, each in one `multi`
//! with its record.

use serde_json::Value;
use zookeeper_client::{Client, CreateMode, MultiWriteResult, Stat};

use super::schema::violations;
use super::txn::{entry_bytes, Failed, Found, Step, Txn};
use super::{sha256_hex, Header, Layout, Operation, PublishOptions, Release, Violation, MAX_MESSAGE};
use crate::path::validate_path;
use crate::{Error, Registry, Result};

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
    /// A canary node emptied in the same transaction, at its version (a
    /// promote).
    canary: Option<(String, i32)>,
}

impl Registry {
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
            canary: None,
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
            canary: None,
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
            canary: None,
        };
        self.write_release(plan).await
    }

    /// Writes a release of `bytes` (see [`Plan`]).
    pub(super) async fn release_with(
        &self,
        path: &str,
        bytes: &[u8],
        value: Option<Value>,
        op: Operation,
        options: &PublishOptions,
        canary: Option<(String, i32)>,
    ) -> Result<Release> {
        self.check_release(path, bytes, options).or_else(|e| match e {
            Error::Data { .. } if value.is_none() => Ok(Value::Null),
            e => Err(e),
        })?;
        self.write_release(Plan { path, bytes, value, op, options, rollback_of: None, canary }).await
    }

    pub(super) fn layout(&self, path: &str) -> Layout {
        Layout::new(&self.shared.config.config_root, path)
    }

    /// Refuses `/` and paths under the configuration root.
    pub(super) fn check_config_path(&self, path: &str) -> Result<()> {
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
    pub(super) fn check_release(&self, path: &str, value: &[u8], options: &PublishOptions) -> Result<Value> {
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
    pub(super) fn check_schema_of(
        &self,
        path: &str,
        schema: &[u8],
        mzxid: i64,
        value: Option<&Value>,
    ) -> Result<bool> {
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

    pub(super) fn check_schema(&self, path: &str, schema: &[u8], mzxid: i64, value: &Value) -> Result<bool> {
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
                version: current.map_or(0, |v| v + 1),
                from_version: current,
                node_czxid: guessed_life,
                schema_version,
                rollback_of: plan.rollback_of,
                ..self.entry_header(path, plan.op, plan.bytes, &plan.options.message)
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
            let names = found.history.as_deref().unwrap_or_default();
            let keep = self.shared.config.history_keep;
            let over = txn.record(&layout.history, "r-", &entry, names, keep, &sequential)?;
            if let Some((node, version)) = &plan.canary {
                // Emptied, not deleted: its version keeps growing (see
                // `promote_canary`).
                txn.set(Step::Canary, node, b"", *version)?;
            }
            // Checked before anything is made: a refused value leaves no
            // directory behind either.
            txn.fits(path, self.shared.config.max_request_size)?;
            if !found.meta {
                self.ensure(&client, &layout.dir).await?;
            }
            if found.live.is_none() {
                if let Some(parent) = crate::path::parent(path).filter(|p| *p != "/") {
                    self.ensure(&client, parent).await?;
                }
            }
            let what = if plan.op == Operation::Promote { "promote" } else { "publish" };
            match self.commit(txn, what, path, plan.options.if_version).await {
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
}

pub(super) fn parse_json(path: &str, value: &[u8]) -> Result<Value> {
    serde_json::from_slice(value).map_err(|e| Error::Data {
        path: path.to_string(),
        reason: format!("a configuration value must be JSON: {e}"),
    })
}
