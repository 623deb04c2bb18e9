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

    /// The write is larger than the server accepts: the encoded data over
    /// the builder's `max_data_size`, or the whole request (data, path and
    /// ACL) over `max_request_size`, ZooKeeper's `jute.maxbuffer` (a server
    /// drops the connection of a request over it). Checked before sending.
    #[error("writing {path} takes {size} bytes, over the limit of {limit} bytes (the data alone is bounded by max_data_size; data, path and ACL together by the server's request limit, jute.maxbuffer, 1 MiB by default)")]
    DataTooLarge {
        /// The node.
        path: String,
        /// Encoded size (of the data, or of the whole request).
        size: usize,
        /// The limit it is over.
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
    /// so the registration cannot take it (the registration is kept and
    /// made as soon as the node goes away); or `set_data` was asked to
    /// write into another session's ephemeral node (nothing is written).
    #[error("{path} is {}, not by this registry", holder(*.owner))]
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
    #[error("lock {path} {}", not_obtained(*.waited))]
    LockTimeout {
        /// The lock path.
        path: String,
        /// How long it was waited for.
        waited: std::time::Duration,
    },

    /// An election path holds another layout's contenders: joining in
    /// this layout could elect two leaders (the layouts sort differently).
    #[error("{path} holds {found} nodes; using it in the {asked} layout could let two clients lead or hold it at once (use the {found} layout)")]
    LayoutMismatch {
        /// The election path.
        path: String,
        /// The layout found there.
        found: &'static str,
        /// The layout asked for.
        asked: &'static str,
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

    /// A service directory holds instances of another format than the one
    /// being registered: every format must own its directory (Curator's
    /// readers take foreign nodes for junk instances, a bad `member_` node
    /// stops Java ServerSet readers).
    #[error("{path} holds {found} instances; refusing to register a {writing} instance there (each format must own its directory)")]
    FormatConflict {
        /// The service directory.
        path: String,
        /// The format its children are in.
        found: crate::discovery::Format,
        /// The format being registered.
        writing: crate::discovery::Format,
    },

    /// An argument is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),

    /// ZooKeeper refused the session's credentials (SASL): the user or the
    /// password is wrong, or the server requires SASL and none was given.
    /// Retrying cannot help.
    #[error("ZooKeeper refused the credentials: {reason}")]
    AuthFailed {
        /// What was refused.
        reason: String,
    },

    /// TLS to ZooKeeper cannot work as configured: PEM that is not
    /// certificates or a key, a server certificate the CA did not sign, a
    /// client certificate the server refuses. Retrying cannot help.
    #[error("TLS: {reason}")]
    Tls {
        /// What is wrong.
        reason: String,
    },

    /// The connection string is malformed (checked before connecting).
    #[error("invalid server list {servers:?}: {reason}; expected HOST:PORT[,HOST:PORT...][/chroot]")]
    InvalidServers {
        /// The connection string as given.
        servers: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The chroot of the connection string does not exist on the servers.
    /// The registry never creates it unless asked to
    /// ([`RegistryBuilder::create_chroot`](crate::RegistryBuilder::create_chroot)).
    #[error("the chroot {chroot} does not exist (check its spelling, or create it with create_chroot(true) / --create-chroot)")]
    ChrootMissing {
        /// The chroot.
        chroot: String,
    },

    /// The node has children, so it cannot be removed on its own.
    #[error("{path} has children; remove them first (`ndsr unset -r`, or Registry::unset_recursive)")]
    NotEmpty {
        /// The node.
        path: String,
    },

    /// The lock path holds a node that is not a lock: a lock never changes
    /// a node it did not create.
    #[error("{path} cannot be a lock: {reason}")]
    NotALock {
        /// The lock path.
        path: String,
        /// Why the node there is not a lock node.
        reason: &'static str,
    },

    /// The server dropped the connection each time this write was sent
    /// (typically a request over the server's `jute.maxbuffer`): the write
    /// was given up after backing off, so as not to reconnect in a loop.
    #[error("the server dropped the connection on each of {attempts} attempts to write {path}; given up (is the request over the server's jute.maxbuffer?)")]
    WriteDropped {
        /// The node.
        path: String,
        /// How many times it was sent.
        attempts: u32,
    },

    /// The node kept changing under a read-then-write (another client
    /// wrote it between each of our reads and writes): nothing of ours was
    /// written; trying again later can succeed.
    #[error("{path} kept changing {during} ({}); nothing was written, try again", attempts_text(*.attempts))]
    Contention {
        /// The node.
        path: String,
        /// What was being done ("while being written", ...).
        during: &'static str,
        /// How many read-then-write rounds were tried.
        attempts: u32,
    },

    /// No answer came for a write that had been sent: it may or may not
    /// have been applied (read the node to know). A write that had not been
    /// sent when its caller gave up is never sent later, and fails with
    /// [`Error::NoConnection`] instead.
    #[error(
        "{op} {path}: no answer within the operation timeout; the write may or may not have been applied"
    )]
    OutcomeUnknown {
        /// The operation.
        op: &'static str,
        /// The node.
        path: String,
    },

    /// A configuration write was conditional on a version of the live node
    /// ([`PublishOptions::if_version`](crate::release::PublishOptions::if_version))
    /// and another writer got there first: nothing was written.
    #[error("{path} is {}, not at version {expected}: another writer changed it first; nothing was written", show_version(*.current))]
    VersionConflict {
        /// The configuration path.
        path: String,
        /// The version the write expected.
        expected: i32,
        /// The version found (`None`: the node does not exist).
        current: Option<i32>,
    },

    /// A configuration value does not fit the path's JSON Schema (or the
    /// live value does not fit a schema being set): every violation is
    /// listed, and nothing was written.
    #[error("{} of {path} does not fit its schema: {}; nothing was written", which_value(*.version), list_violations(.violations))]
    Invalid {
        /// The configuration path.
        path: String,
        /// The live version that was checked (setting a schema), or
        /// `None` for the value being written.
        version: Option<i32>,
        /// Each violation, by JSON pointer into the value.
        violations: Vec<crate::release::Violation>,
    },

    /// A JSON Schema that cannot be used: not valid draft 2020-12, or it
    /// refers to documents outside itself (remote `$ref`s are not fetched).
    #[error("the schema for {path} cannot be used: {reason}")]
    SchemaInvalid {
        /// The configuration path.
        path: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A rollback asked for a version that the history does not hold (or
    /// holds only as a tampered entry).
    #[error("version {version} of {path} is not in its history; it holds {}", list_versions(.available))]
    NotInHistory {
        /// The configuration path.
        path: String,
        /// The version asked for.
        version: i32,
        /// The versions the history holds, oldest first.
        available: Vec<i32>,
    },

    /// A canary needs a path that has an ndsr release (its history is
    /// where the canary's promotion is recorded, and what `status` compares
    /// with): publish or apply one first.
    #[error("{path} has no ndsr release yet: publish or apply one before a canary")]
    NoRelease {
        /// The configuration path.
        path: String,
    },

    /// There is no canary of the path to promote.
    #[error("{path} has no canary")]
    NoCanary {
        /// The configuration path.
        path: String,
    },

    /// A typed configuration has no value to start with: the node holds
    /// nothing good, and there is no default and no saved good value.
    #[error("configuration {path} has no usable value: {reason}")]
    ConfigUnavailable {
        /// The configuration path.
        path: String,
        /// Why.
        reason: String,
    },

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

/// "1 attempt", "3 attempts".
fn attempts_text(attempts: u32) -> String {
    if attempts == 1 {
        "1 attempt".into()
    } else {
        format!("{attempts} attempts")
    }
}

impl Error {
    /// Can the same call succeed if retried later (connection problems,
    /// contention, a node held by another session)?
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::NoConnection(_)
                | Error::Conflict { .. }
                | Error::Contention { .. }
                | Error::OutcomeUnknown { .. }
        )
    }

    /// Is this ZooKeeper's "no node" answer?
    pub fn is_no_node(&self) -> bool {
        matches!(self, Error::ZooKeeper { source: zookeeper_client::Error::NoNode, .. })
    }

    /// Does a registration whose write failed with this error stay in the
    /// desired state (to be made later), rather than being dropped? Only
    /// for errors that a later attempt can get past without the caller
    /// changing anything. A separate policy from [`is_retryable`], which
    /// answers the caller's question.
    ///
    /// [`is_retryable`]: Self::is_retryable
    pub(crate) fn keeps_goal(&self) -> bool {
        matches!(
            self,
            Error::NoConnection(_)
                | Error::Conflict { .. }
                | Error::Contention { .. }
                | Error::OutcomeUnknown { .. }
        )
    }

    /// Maps a client error for an operation on `path`.
    pub(crate) fn from_zk(op: &'static str, path: &str, e: zookeeper_client::Error) -> Error {
        use zookeeper_client::Error as Zk;
        match e {
            Zk::NoAuth => Error::NotAuthorized { op, path: path.to_string() },
            Zk::NotEmpty => Error::NotEmpty { path: path.to_string() },
            Zk::ConnectionLoss | Zk::Timeout | Zk::SessionExpired | Zk::ClientClosed | Zk::NoHosts => {
                Error::NoConnection(format!("{op} {path}: {e}"))
            }
            source => Error::ZooKeeper { path: path.to_string(), source },
        }
    }
}

/// "held by session 0x..." or "a persistent node".
fn holder(owner: i64) -> String {
    if owner == 0 {
        "a persistent node".to_string()
    } else {
        format!("held by session {owner:#x}")
    }
}

/// "not obtained within 2s", or "is held (not waited for)" for a zero wait.
fn not_obtained(waited: std::time::Duration) -> String {
    if waited.is_zero() {
        "is held by others (not free now, and no wait was asked for)".to_string()
    } else {
        let waited = std::time::Duration::from_millis(waited.as_millis() as u64);
        format!("not obtained within {}", humantime::format_duration(waited))
    }
}

fn show_version(v: Option<i32>) -> String {
    v.map_or_else(|| "absent".to_string(), |v| format!("at version {v}"))
}

fn which_value(version: Option<i32>) -> String {
    version.map_or_else(|| "the value".to_string(), |v| format!("the live value (version {v})"))
}

fn list_violations(violations: &[crate::release::Violation]) -> String {
    let shown: Vec<String> =
        violations.iter().map(|v| format!("at {:?}: {}", v.pointer, v.message)).collect();
    shown.join("; ")
}

fn list_versions(versions: &[i32]) -> String {
    if versions.is_empty() {
        return "no releases".to_string();
    }
    let shown: Vec<String> = versions.iter().map(i32::to_string).collect();
    format!("versions {}", shown.join(", "))
}

/// The registry's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
