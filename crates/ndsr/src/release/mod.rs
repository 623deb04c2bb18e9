//! Configuration releases: versioned, validated, audited writes of a
//! configuration node, with history, rollback, JSON-aware diffs and JSON
//! Schemas.
//!
//! The live node stays a plain node holding the current value, so every
//! reader (the Python original, kazoo, Curator, zkCli) reads it unchanged.
//! What ndsr adds lives beside it, under the registry's
//! [`config_root`](crate::RegistryBuilder::config_root) (default `/ndsr`),
//! in one flat directory per configuration path (`/app/web` is
//! `/ndsr/config/%2Fapp%2Fweb`):
//!
//! | node | holds |
//! |---|---|
//! | `<root>/config/<K>` | what it is: `{"format":"ndsr-config","v":1,"path":...}` |
//! | `<root>/config/<K>/schema` | the JSON Schema, or nothing (no schema) |
//! | `<root>/config/<K>/history/r-<seq>` | one release: a header line, then the value's exact bytes |
//! | `<root>/config/<K>/audit/s-<seq>` | one change of the schema |
//! | `<root>/config/<K>/canary` | the canary, if any: a header line, then the value's bytes |
//! | `<root>/config/<K>/clients/<id>~<n>` | ephemeral: what one ndsr client runs (once it has seen a canary) |
//!
//! A release is written in one ZooKeeper transaction (`multi`) with the
//! value: the live node's write (conditional on its version), the history
//! entry, the removal of the oldest entry beyond
//! [`history_keep`](crate::RegistryBuilder::history_keep), and a check of
//! the schema's version. So a value changed through ndsr is never
//! recorded without being written, nor written without being recorded,
//! and a schema change races no write. See `docs/CONFIG.md`.

mod batch;
mod canary;
mod diff;
mod external;
mod history;
mod read;
mod replay;
mod schema;
mod schema_write;
mod txn;
mod typed;
mod write;

pub(crate) use schema::Schemas;
pub(crate) use txn::Known;

use serde::{Deserialize, Serialize};

pub use batch::{BatchChange, BatchResult, BatchStep};
pub(crate) use canary::check_identity;
pub use canary::{percent_bucket, Applied, Canary, CanaryRule, CanaryStatus, ClientReport, Refusal};
pub use diff::{diff, Change, ChangeKind};
pub use history::{Entry, GapReason, History, HistoryItem};
pub use replay::Releases;
pub use typed::{Config, ConfigBuilder, ConfigChanges, ConfigStatus};

/// How to publish a value (see [`Registry::publish`](crate::Registry::publish)).
#[derive(Debug, Clone, Default)]
pub struct PublishOptions {
    /// Why: recorded in the history (at most 4 KiB).
    pub message: String,
    /// Compare-and-set: write only if the live node is at this version
    /// (`-1`: only if it does not exist), else fail with
    /// [`Error::VersionConflict`](crate::Error::VersionConflict) naming the
    /// version found. `None`: write over whatever version is there (still
    /// one atomic, version-checked write of the version just read).
    pub if_version: Option<i32>,
}

impl PublishOptions {
    /// Options with a message.
    pub fn message(message: impl Into<String>) -> Self {
        PublishOptions { message: message.into(), if_version: None }
    }

    /// The same, conditional on the live version (see
    /// [`if_version`](Self::if_version)).
    pub fn if_version(mut self, version: i32) -> Self {
        self.if_version = Some(version);
        self
    }
}

/// A release that was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The configuration path.
    pub path: String,
    /// The live node's version that holds the value.
    pub version: i32,
    /// The version it replaced (`None`: the node was created).
    pub previous_version: Option<i32>,
    /// The history entry's node name (`r-0000000007`).
    pub entry: String,
    /// SHA-256 of the value's bytes, in hex.
    pub sha256: String,
}

/// What a release did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// A new value.
    Publish,
    /// An earlier value published again.
    Rollback,
    /// A value applied from a file (configuration as code).
    Apply,
    /// A value written outside ndsr, recorded as it was seen.
    External,
    /// A canary made the next release.
    Promote,
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Operation::Publish => "publish",
            Operation::Rollback => "rollback",
            Operation::Apply => "apply",
            Operation::External => "external",
            Operation::Promote => "promote",
        })
    }
}

/// One way a value does not fit its schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Where, as a JSON pointer into the value (`""` is the whole value).
    pub pointer: String,
    /// What is wrong there.
    pub message: String,
}

/// A path's schema as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaInfo {
    /// The schema.
    pub schema: serde_json::Value,
    /// The schema node's version (each set or removal adds one).
    pub version: i32,
}

/// What setting or removing a schema did.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaChange {
    /// The schema node's new version.
    pub version: i32,
    /// Violations of the live value that `force` let through (empty
    /// unless forced).
    pub forced_over: Vec<Violation>,
}

/// The header line of a history entry (the value's bytes follow it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Header {
    pub(crate) format: String,
    pub(crate) v: u32,
    pub(crate) path: String,
    pub(crate) op: Operation,
    /// The live node's version holding the value.
    pub(crate) version: i32,
    /// The version it replaced, `None` when the release created the node.
    pub(crate) from_version: Option<i32>,
    /// The czxid of the live node written (`None`: created by this very
    /// transaction, so the entry's own czxid).
    pub(crate) node_czxid: Option<i64>,
    pub(crate) sha256: String,
    pub(crate) size: usize,
    pub(crate) author: String,
    pub(crate) host: String,
    pub(crate) time: String,
    pub(crate) message: String,
    pub(crate) schema_version: Option<i32>,
    pub(crate) rollback_of: Option<i32>,
}

pub(crate) const ENTRY_FORMAT: &str = "ndsr-config-entry";
pub(crate) const MAX_MESSAGE: usize = 4096;

/// The nodes of one configuration path's releases.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// `<root>/config`.
    pub(crate) dir: String,
    /// `<root>/config/<K>`.
    pub(crate) meta: String,
    pub(crate) schema: String,
    pub(crate) history: String,
    pub(crate) audit: String,
    /// `<root>/config/<K>/canary`.
    pub(crate) canary: String,
    /// `<root>/config/<K>/clients`: the reports of clients.
    pub(crate) clients: String,
}

impl Layout {
    pub(crate) fn new(root: &str, path: &str) -> Layout {
        let dir = format!("{}/config", root.trim_end_matches('/'));
        let meta = format!("{dir}/{}", escape(path));
        Layout {
            schema: format!("{meta}/schema"),
            history: format!("{meta}/history"),
            audit: format!("{meta}/audit"),
            canary: format!("{meta}/canary"),
            clients: format!("{meta}/clients"),
            meta,
            dir,
        }
    }
}

/// One node name for a path: `%` is `%25` and `/` is `%2F`, so every path
/// has its own name and none holds another's.
pub(crate) fn escape(path: &str) -> String {
    path.replace('%', "%25").replace('/', "%2F")
}

/// SHA-256 in hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// This host's name, for the record.
pub(crate) fn host_name() -> &'static str {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "unknown".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_escape_to_distinct_single_names() {
        assert_eq!(escape("/app/web"), "%2Fapp%2Fweb");
        assert_eq!(escape("/a%2Fb"), "%2Fa%252Fb");
        assert_ne!(escape("/a/b"), escape("/a%2Fb"));
        let l = Layout::new("/ndsr/", "/app/web");
        assert_eq!(l.meta, "/ndsr/config/%2Fapp%2Fweb");
        assert_eq!(l.history, "/ndsr/config/%2Fapp%2Fweb/history");
    }

    #[test]
    fn sha256_is_the_standard_digest() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
