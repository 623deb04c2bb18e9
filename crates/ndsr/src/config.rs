//! The registry builder: servers, timeouts, lazy and read-only modes.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use crate::acl::{Acl, Credentials};
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
    pub(crate) credentials: Option<Credentials>,
    pub(crate) acl: Option<Vec<Acl>>,
    pub(crate) cache_file: Option<PathBuf>,
    pub(crate) cache_file_max_age: Duration,
    pub(crate) rate_limit: Option<NonZeroU32>,
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
            credentials: None,
            acl: None,
            cache_file: None,
            cache_file_max_age: Duration::from_secs(7 * 24 * 3600),
            rate_limit: None,
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

    /// Authenticates with ZooKeeper's `digest` scheme on every connection
    /// (re-applied after every reconnect and session rebuild). Nodes the
    /// registry creates then get `digest:<user>:<hash>` ALL plus
    /// `world:anyone` READ, unless [`acl`](Self::acl) says otherwise. The
    /// password never appears in logs or `Debug` output.
    ///
    /// ```no_run
    /// # async fn demo() -> ndsr::Result<()> {
    /// let registry = ndsr::Registry::builder("127.0.0.1:2181").auth("deploy", "s3cret").build().await?;
    /// // Created with digest:deploy:<hash> ALL and world:anyone READ.
    /// registry.set_node("/services/web/10.0.0.1:80", None::<&str>).await?;
    /// # Ok(()) }
    /// ```
    pub fn auth(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some(Credentials::new(username, password));
        self
    }

    /// The ACL of every node the registry creates (registrations, data
    /// nodes, their parents, locks), instead of the default.
    ///
    /// ```no_run
    /// use ndsr::{Acl, AuthId, Permission};
    /// let builder = ndsr::Registry::builder("127.0.0.1:2181")
    ///     .acl(vec![Acl::new(Permission::ALL, AuthId::new("ip", "10.0.0.0/8"))]);
    /// ```
    pub fn acl(mut self, acl: Vec<Acl>) -> Self {
        self.acl = Some(acl);
        self
    }

    /// Saves every cached snapshot to this file (JSON, written atomically,
    /// mode 0600, debounced) and serves it while ZooKeeper cannot be
    /// reached, for a cold start with the servers down. Several processes
    /// may share one file. See [`crate::cachefile`].
    ///
    /// ```no_run
    /// # async fn demo() -> ndsr::Result<()> {
    /// let registry = ndsr::Registry::builder("127.0.0.1:2181")
    ///     .cache_file("/var/cache/myapp/ndsr.json")
    ///     .lazy(true) // start even while ZooKeeper is down
    ///     .build()
    ///     .await?;
    /// let web = registry.get("/services/web").await?; // from the file if still disconnected
    /// if web.is_stale() {
    ///     println!("last known servers, {:?} old: {:?}", web.age(), web.children);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn cache_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.cache_file = Some(path.into());
        self
    }

    /// Entries of the cache file older than this are ignored and dropped
    /// (default 7 days).
    pub fn cache_file_max_age(mut self, age: Duration) -> Self {
        self.cache_file_max_age = age;
        self
    }

    /// Limits the ZooKeeper calls of the registry's background work
    /// (re-arming watches and restoring registrations after a reconnect or
    /// an expiry, retries) to this many per second, as a token bucket.
    /// Reads from the cache and the handling of watch events are never
    /// delayed. Off by default.
    ///
    /// ```
    /// let builder = ndsr::Registry::builder("127.0.0.1:2181")
    ///     .rate_limit(std::num::NonZeroU32::new(500).unwrap());
    /// ```
    pub fn rate_limit(mut self, calls_per_second: NonZeroU32) -> Self {
        self.rate_limit = Some(calls_per_second);
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
