//! The test kit's error type.

use std::path::PathBuf;

/// What went wrong while starting or controlling a test server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No ZooKeeper installation (or no Java) was found.
    #[error("{0}")]
    NotInstalled(String),

    /// The server process did not come up; carries the tail of its log.
    #[error("ZooKeeper server failed to start: {reason}\n--- last lines of {log} ---\n{log_tail}")]
    StartFailed {
        /// Why the start was judged failed.
        reason: String,
        /// The server's log file.
        log: PathBuf,
        /// The last lines of that log.
        log_tail: String,
    },

    /// A fault control was used in a state where it cannot work
    /// (for example `thaw` on a server that is not frozen).
    #[error("invalid test kit operation: {0}")]
    InvalidState(String),

    /// A local I/O operation (temp dirs, sockets, processes) failed.
    #[error("{context}: {source}")]
    Io {
        /// What the kit was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A ZooKeeper client call made by the kit failed.
    #[error("ZooKeeper call failed while {context}: {source}")]
    ZooKeeper {
        /// What the kit was doing.
        context: String,
        /// The client's error.
        #[source]
        source: zookeeper_client::Error,
    },
}

/// The test kit's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}
