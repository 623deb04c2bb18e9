//! Reading releases: the history, diffs, the schema, and checking a value
//! without writing it.

use serde_json::Value;

use super::history::{self, History};
use super::write::parse_json;
use super::{diff, Change, SchemaInfo};
use crate::{Error, Registry, Result};

impl Registry {
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
}
