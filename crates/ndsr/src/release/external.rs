//! Recording a value written outside ndsr as an `external` release.

use zookeeper_client::{CreateMode, MultiWriteResult};

use super::history;
use super::txn::{entry_bytes, Failed, Step, Txn};
use super::{Header, Operation, Release};
use crate::{Error, Registry, Result};

impl Registry {
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
                version: stat.version,
                node_czxid: Some(stat.czxid),
                ..self.entry_header(path, Operation::External, &bytes, "seen written outside ndsr")
            };
            let entry = entry_bytes(path, &header, &bytes)?;
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
            let names = found.history.as_deref().unwrap_or_default();
            txn.record(&layout.history, "r-", &entry, names, self.shared.config.history_keep, &sequential)?;
            txn.fits(path, self.shared.config.max_request_size)?;
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
}
