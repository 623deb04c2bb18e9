//! What a read returns: a node's data, stat and children at one moment.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::codec::Object;
use crate::{Error, Result};

/// A node's metadata, as ZooKeeper reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    /// zxid of the transaction that created the node.
    pub czxid: i64,
    /// zxid of the last data change.
    pub mzxid: i64,
    /// Creation time, ms since the epoch.
    pub ctime: i64,
    /// Last data change, ms since the epoch.
    pub mtime: i64,
    /// Data version.
    pub version: i32,
    /// Children version.
    pub cversion: i32,
    /// ACL version.
    pub aversion: i32,
    /// Session id owning an ephemeral node, 0 otherwise.
    pub ephemeral_owner: i64,
    /// Length of the data in bytes.
    pub data_length: i32,
    /// Number of children.
    pub num_children: i32,
    /// zxid of the last change to the children.
    pub pzxid: i64,
}

impl From<&zookeeper_client::Stat> for Stat {
    fn from(s: &zookeeper_client::Stat) -> Stat {
        Stat {
            czxid: s.czxid,
            mzxid: s.mzxid,
            ctime: s.ctime,
            mtime: s.mtime,
            version: s.version,
            cversion: s.cversion,
            aversion: s.aversion,
            ephemeral_owner: s.ephemeral_owner,
            data_length: s.data_length,
            num_children: s.num_children,
            pzxid: s.pzxid,
        }
    }
}

/// How current a snapshot is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Freshness {
    /// Read from ZooKeeper, or kept current by a live watch.
    Fresh,
    /// The last known value: the registry lost its connection at `since`
    /// and changes made after that may be missing.
    Stale {
        /// When the connection was lost.
        since: SystemTime,
    },
}

/// A node at one moment: `{path, data, stat, children}` like the original,
/// plus how fresh it is.
///
/// A missing node has `data` and `stat` `None` and no children. `stat`'s
/// child fields (`cversion`, `num_children`, `pzxid`) are as of the last
/// read of the node itself; `children` is kept current by the watch.
#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    /// The node's path (shared with the registry's tables: a cached
    /// snapshot does not copy it).
    pub path: std::sync::Arc<str>,
    /// Its decoded data (see [`crate::codec`]), `None` when empty or missing.
    pub data: Option<Object>,
    /// Its metadata, `None` when the node does not exist.
    pub stat: Option<Stat>,
    /// Names of its children, sorted.
    pub children: Vec<String>,
    /// Whether this is live or last-known.
    #[serde(skip)]
    pub freshness: Freshness,
}

impl PartialEq for Snapshot {
    /// Content equality: freshness is not compared.
    fn eq(&self, other: &Snapshot) -> bool {
        self.path == other.path
            && self.data == other.data
            && self.stat == other.stat
            && self.children == other.children
    }
}

impl Snapshot {
    /// A snapshot of a node that does not exist.
    pub fn missing(path: &str) -> Snapshot {
        Snapshot::missing_at(std::sync::Arc::from(path))
    }

    fn missing_at(path: std::sync::Arc<str>) -> Snapshot {
        Snapshot { path, data: None, stat: None, children: Vec::new(), freshness: Freshness::Fresh }
    }

    /// A fresh snapshot of a node as read or written: its bytes and stat
    /// (`None` when missing, and then no children) and its children.
    pub(crate) fn of_node(
        path: &std::sync::Arc<str>,
        node: Option<(&[u8], Stat)>,
        children: impl IntoIterator<Item = String>,
    ) -> Snapshot {
        match node {
            None => Snapshot::missing_at(path.clone()),
            Some((bytes, stat)) => Snapshot {
                path: path.clone(),
                data: crate::codec::decode(bytes),
                stat: Some(stat),
                children: children.into_iter().collect(),
                freshness: Freshness::Fresh,
            },
        }
    }

    /// Does the node exist?
    pub fn exists(&self) -> bool {
        self.stat.is_some()
    }

    /// Is this the last known value rather than a live one?
    pub fn is_stale(&self) -> bool {
        matches!(self.freshness, Freshness::Stale { .. })
    }

    /// How long ago the connection was lost, for a stale snapshot.
    pub fn age(&self) -> Option<Duration> {
        match self.freshness {
            Freshness::Fresh => None,
            Freshness::Stale { since } => Some(since.elapsed().unwrap_or_default()),
        }
    }

    /// Deserializes the data into `T` (`None` when there is no data).
    ///
    /// # Errors
    /// [`Error::Data`] when the data does not fit `T`.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn demo(registry: ndsr::Registry) -> ndsr::Result<()> {
    /// #[derive(serde::Deserialize)]
    /// struct Config { replicas: u32 }
    /// let config: Option<Config> = registry.get("/config/web").await?.data_as()?;
    /// # Ok(()) }
    /// ```
    pub fn data_as<T: serde::de::DeserializeOwned>(&self) -> Result<Option<T>> {
        self.data
            .as_ref()
            .map(|o| serde_json::from_value(serde_json::Value::Object(o.clone())))
            .transpose()
            .map_err(|e| Error::Data { path: self.path.to_string(), reason: e.to_string() })
    }
}
