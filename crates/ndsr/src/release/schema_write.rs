//! Setting and removing a path's schema, audited, in one `multi` that
//! checks the live node's version.

use serde_json::Value;
use zookeeper_client::CreateMode;

use super::schema::{compile, violations};
use super::txn::{now, Failed, Step, Txn};
use super::{host_name, sha256_hex, SchemaChange, Violation};
use crate::{Error, Registry, Result};

impl Registry {
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

    pub(super) async fn write_schema(
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
            let names = found.audit.as_deref().unwrap_or_default();
            let keep = self.shared.config.history_keep;
            txn.record(&layout.audit, "s-", record.to_string().as_bytes(), names, keep, &sequential)?;
            txn.fits(&layout.schema, self.shared.config.max_request_size)?;
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
}
