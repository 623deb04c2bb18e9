//! The registry builder: servers, timeouts, lazy and read-only modes.

use std::time::Duration;

use crate::{Registry, Result};

/// Default ZooKeeper session timeout.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// Default limit on encoded node data: 1 MiB less 1 KiB for the request
/// around it (ZooKeeper's `jute.maxbuffer` bounds the whole request).
pub const DEFAULT_MAX_DATA_SIZE: usize = 1024 * 1024 - 1024;

/// Options for a [`Registry`]; start from [`Registry::builder`].
///
/// # Example
///
/// ```no_run
/// # async fn demo() -> ndsr::Result<()> {
/// use std::time::Duration;
/// let registry = ndsr::Registry::builder("zk1:2181,zk2:2181/myapp")
///     .session_timeout(Duration::from_secs(10))
///     .connect_timeout(Duration::from_secs(5))
///     .lazy(true)
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct RegistryBuilder {
    pub(crate) servers: String,
    pub(crate) session_timeout: Duration,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) operation_timeout: Option<Duration>,
    pub(crate) lazy: bool,
    pub(crate) readonly: bool,
    pub(crate) max_data_size: usize,
}

impl RegistryBuilder {
    pub(crate) fn new(servers: &str) -> RegistryBuilder {
        RegistryBuilder {
            servers: servers.to_string(),
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            connect_timeout: None,
            operation_timeout: None,
            lazy: false,
            readonly: false,
            max_data_size: DEFAULT_MAX_DATA_SIZE,
        }
    }

    /// The ZooKeeper session timeout (default 10 s). Ephemeral
    /// registrations outlive a lost connection by this long.
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// How long `build` (when not lazy) and each write wait for a
    /// connection before failing with `NoConnection` (default: the session
    /// timeout).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Bound on every single ZooKeeper call once connected (default: the
    /// session timeout).
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = Some(timeout);
        self
    }

    /// Lazy: `build` returns at once and the registry connects in the
    /// background; otherwise `build` fails with `NoConnection` when no
    /// server answers within the connect timeout.
    pub fn lazy(mut self, lazy: bool) -> Self {
        self.lazy = lazy;
        self
    }

    /// Read-only: every write fails with `ReadOnly`; reads and watches work.
    pub fn readonly(mut self, readonly: bool) -> Self {
        self.readonly = readonly;
        self
    }

    /// Largest encoded node data accepted (default 1 MiB less 1 KiB).
    pub fn max_data_size(mut self, bytes: usize) -> Self {
        self.max_data_size = bytes;
        self
    }

    pub(crate) fn connect_timeout_or_default(&self) -> Duration {
        self.connect_timeout.unwrap_or(self.session_timeout)
    }

    pub(crate) fn operation_timeout_or_default(&self) -> Duration {
        self.operation_timeout.unwrap_or(self.session_timeout)
    }

    /// Starts the registry's supervisor and, unless lazy, waits for the
    /// first connection.
    ///
    /// Must be called within a Tokio runtime.
    ///
    /// # Errors
    /// [`Error::NoConnection`](crate::Error::NoConnection) when not lazy and
    /// no server answered within the connect timeout;
    /// [`Error::InvalidPath`](crate::Error::InvalidPath) for a bad chroot.
    pub async fn build(self) -> Result<Registry> {
        Registry::start(self).await
    }
}
