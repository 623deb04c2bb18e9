//! The registry's error type.

/// Everything a registry call can fail with.
///
/// Writes never report success when they failed: an error here means the
/// write was not confirmed by ZooKeeper.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not connected to ZooKeeper within the connect timeout. For
    /// `set_node` the registration is kept and written once connected.
    #[error("no connection to ZooKeeper ({0})")]
    NoConnection(String),

    /// The registry was built read-only; it refuses every write.
    #[error("the registry is read-only: {0} refused")]
    ReadOnly(&'static str),

    /// The path is not a valid ZooKeeper path.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The encoded data is larger than the limit the server accepts.
    #[error("data for {path} is {size} bytes, over the limit of {limit} bytes")]
    DataTooLarge {
        /// The node.
        path: String,
        /// Encoded size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },

    /// ZooKeeper refused the operation on the node's ACL.
    #[error("not authorized to {op} {path}")]
    NotAuthorized {
        /// The operation.
        op: &'static str,
        /// The node.
        path: String,
    },

    /// The node is held by another live session (or is a persistent node),
    /// so the registration cannot take it. The registration is kept and
    /// made as soon as the node goes away.
    #[error("{path} is held by session {owner:#x}, not by this registry")]
    Conflict {
        /// The node.
        path: String,
        /// Its ephemeral owner (0 for a persistent node).
        owner: i64,
    },

    /// A value could not be (de)serialized.
    #[error("cannot convert data of {path}: {reason}")]
    Data {
        /// The node.
        path: String,
        /// serde's message.
        reason: String,
    },

    /// A lock was not obtained within its wait.
    #[error("lock {path} not obtained within {waited:?}")]
    LockTimeout {
        /// The lock path.
        path: String,
        /// How long it was waited for.
        waited: std::time::Duration,
    },

    /// The lock's holders disagree on how many may hold it at once.
    #[error("lock {path} admits {stored} holders, but this caller asked for {requested}; all holders must agree (delete the lock node to change it)")]
    LockMismatch {
        /// The lock path.
        path: String,
        /// The lease count stored in the lock node.
        stored: u32,
        /// The count this caller asked for.
        requested: u32,
    },

    /// An argument is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),

    /// The registry was closed.
    #[error("the registry is closed")]
    Closed,

    /// Any other ZooKeeper error.
    #[error("ZooKeeper error on {path}: {source}")]
    ZooKeeper {
        /// The node.
        path: String,
        /// The client's error.
        #[source]
        source: zookeeper_client::Error,
    },
}

impl Error {
    /// Can the same call succeed if retried later (connection problems)?
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::NoConnection(_) | Error::Conflict { .. })
    }

    /// Maps a client error for an operation on `path`.
    pub(crate) fn from_zk(op: &'static str, path: &str, e: zookeeper_client::Error) -> Error {
        use zookeeper_client::Error as Zk;
        match e {
            Zk::NoAuth => Error::NotAuthorized { op, path: path.to_string() },
            Zk::ConnectionLoss | Zk::Timeout | Zk::SessionExpired | Zk::ClientClosed | Zk::NoHosts => {
                Error::NoConnection(format!("{op} {path}: {e}"))
            }
            source => Error::ZooKeeper { path: path.to_string(), source },
        }
    }
}

/// The registry's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
