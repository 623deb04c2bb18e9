//! The registry builder: servers, timeouts, lazy and read-only modes.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use crate::acl::{Acl, Credentials};
use crate::{Registry, Result};

mod release;

/// Default ZooKeeper session timeout.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// Default limit on encoded node data: 1 MiB less 1 KiB for the request
/// around it (ZooKeeper's `jute.maxbuffer` bounds the whole request).
pub const DEFAULT_MAX_DATA_SIZE: usize = 1024 * 1024 - 1024;
/// Default limit on a whole write request (data, path and ACL): ZooKeeper's
/// default `jute.maxbuffer`. A server closes the connection of a client
/// that sends a larger request.
pub const DEFAULT_MAX_REQUEST_SIZE: usize = 0xfffff;

/// Default bound on path operations running at once
/// ([`RegistryBuilder::max_in_flight`]).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 128;

/// Default root of configuration histories and schemas
/// ([`RegistryBuilder::config_root`]).
pub const DEFAULT_CONFIG_ROOT: &str = "/ndsr";
/// Default number of releases kept per configuration path
/// ([`RegistryBuilder::history_keep`]).
pub const DEFAULT_HISTORY_KEEP: usize = 100;

/// Default number of wanted paths under one parent from which they share
/// one watch on the parent ([`RegistryBuilder::share_parent_watch_at`]).
pub const DEFAULT_SHARE_PARENT_WATCH_AT: usize = 8;

/// Default first delay between connection attempts
/// ([`RegistryBuilder::reconnect_backoff`]).
pub const DEFAULT_RECONNECT_INITIAL: Duration = Duration::from_millis(100);
/// Default longest delay between connection attempts.
pub const DEFAULT_RECONNECT_MAX: Duration = Duration::from_secs(10);
/// Default time a connection must last for the delays to start over.
pub const DEFAULT_RECONNECT_RESET_AFTER: Duration = Duration::from_secs(30);
/// Default writes of one registration in a row that lose the connection
/// before it is given up ([`RegistryBuilder::max_write_drops`]).
pub const DEFAULT_MAX_WRITE_DROPS: u32 = 4;
/// Default read-decide-write rounds of one write before it is reported as
/// [`Error::Contention`](crate::Error::Contention)
/// ([`RegistryBuilder::reconcile_attempts`]).
pub const DEFAULT_RECONCILE_ATTEMPTS: u32 = 8;

/// The reconnect back-off's delays.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReconnectBackoff {
    pub(crate) initial: Duration,
    pub(crate) max: Duration,
    pub(crate) calm: Duration,
}

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
    pub(crate) max_request_size: usize,
    pub(crate) create_chroot: bool,
    pub(crate) credentials: Option<Credentials>,
    pub(crate) tls: Option<crate::Tls>,
    pub(crate) sasl: Option<SaslDigest>,
    pub(crate) acl: Option<Vec<Acl>>,
    pub(crate) cache_file: Option<PathBuf>,
    pub(crate) cache_file_max_age: Duration,
    pub(crate) rate_limit: Option<NonZeroU32>,
    pub(crate) max_in_flight: usize,
    pub(crate) rebuild_jitter: Option<Duration>,
    pub(crate) write_timeout: Option<Duration>,
    pub(crate) share_parent_watch_at: usize,
    pub(crate) reconnect_backoff: ReconnectBackoff,
    pub(crate) max_write_drops: u32,
    pub(crate) reconcile_attempts: u32,
    pub(crate) config_root: String,
    pub(crate) history_keep: usize,
    pub(crate) author: Option<String>,
    pub(crate) identity: Option<String>,
    pub(crate) labels: std::collections::BTreeMap<String, String>,
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
            max_request_size: DEFAULT_MAX_REQUEST_SIZE,
            create_chroot: false,
            credentials: None,
            tls: None,
            sasl: None,
            acl: None,
            cache_file: None,
            cache_file_max_age: Duration::from_secs(7 * 24 * 3600),
            rate_limit: None,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            rebuild_jitter: None,
            write_timeout: None,
            share_parent_watch_at: DEFAULT_SHARE_PARENT_WATCH_AT,
            reconnect_backoff: ReconnectBackoff {
                initial: DEFAULT_RECONNECT_INITIAL,
                max: DEFAULT_RECONNECT_MAX,
                calm: DEFAULT_RECONNECT_RESET_AFTER,
            },
            max_write_drops: DEFAULT_MAX_WRITE_DROPS,
            reconcile_attempts: DEFAULT_RECONCILE_ATTEMPTS,
            config_root: DEFAULT_CONFIG_ROOT.to_string(),
            history_keep: DEFAULT_HISTORY_KEEP,
            author: None,
            identity: None,
            labels: std::collections::BTreeMap::new(),
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

    /// How long `set_node`, `set_data` and the `unset` of a registration
    /// wait for their write once connected (default: four operation
    /// timeouts, as a write may take a read, a parent's creation and the
    /// write itself). A write that has not started by then is withdrawn
    /// and never made (`NoConnection`); one that started and got no answer
    /// is `OutcomeUnknown`: it may or may not be applied.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = Some(timeout);
        self
    }

    pub(crate) fn write_timeout_or_default(&self) -> Duration {
        self.write_timeout.unwrap_or_else(|| self.operation_timeout_or_default() * 4)
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

    /// Largest whole write request accepted: the encoded data plus the path
    /// and the ACL (default 1 MiB less 1 byte, ZooKeeper's default
    /// `jute.maxbuffer`). Raise it only with the servers' `jute.maxbuffer`.
    /// A larger write fails with `DataTooLarge` before it is sent.
    pub fn max_request_size(mut self, bytes: usize) -> Self {
        self.max_request_size = bytes;
        self
    }

    /// Creates the chroot of the connection string (`zk1:2181/myapp`) on
    /// connecting, with its parents, if it is missing (default off: a
    /// missing chroot fails with
    /// [`Error::ChrootMissing`](crate::Error::ChrootMissing), so that a
    /// typo is not silently created). Refused with `readonly(true)`.
    ///
    /// ```no_run
    /// # async fn demo() -> ndsr::Result<()> {
    /// let registry = ndsr::Registry::builder("127.0.0.1:2181/myapp").create_chroot(true).build().await?;
    /// # Ok(()) }
    /// ```
    pub fn create_chroot(mut self, create: bool) -> Self {
        self.create_chroot = create;
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

    /// Talks TLS to the servers (their `secureClientPort`), trusting the
    /// CA in [`Tls`](crate::Tls) and presenting its client certificate
    /// when the server asks. Every host of the connection string is TLS
    /// unless written `tcp://HOST:PORT`. PEM that does not parse fails
    /// [`build`](Self::build) with [`Error::Tls`](crate::Error::Tls); so
    /// does a server whose certificate the CA did not sign, or that
    /// refuses ours, as soon as it is tried (no waiting for the connect
    /// timeout).
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn demo() -> ndsr::Result<()> {
    /// let ca = std::fs::read_to_string("ca.pem").unwrap();
    /// let (cert, key) = (std::fs::read_to_string("client.pem").unwrap(), std::fs::read_to_string("client.key").unwrap());
    /// let registry = ndsr::Registry::builder("zk1:2281,zk2:2281")
    ///     .tls(ndsr::Tls::new(ca).identity(cert, key))
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn tls(mut self, tls: crate::Tls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Authenticates the session with SASL DIGEST-MD5 as `user` (one of
    /// the server's JAAS `user_NAME` entries), for servers that require
    /// SASL (`enforce.auth.enabled`). Re-sent on every reconnect. A server
    /// that refuses the password fails [`build`](Self::build) with
    /// [`Error::AuthFailed`](crate::Error::AuthFailed) at once.
    /// (The digest scheme of ACLs is [`auth`](Self::auth).)
    pub fn sasl_digest_md5(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.sasl = Some(SaslDigest { user: user.into(), password: password.into() });
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

    /// How many path operations (a watch's start, a registration's write,
    /// the handling of a batch of events) run at once; the others wait their
    /// turn (default 128, at least 1). This bounds the memory and the burst
    /// of requests of a registry that starts or restores many paths at once;
    /// each path still has at most one operation at a time.
    pub fn max_in_flight(mut self, operations: usize) -> Self {
        self.max_in_flight = operations.max(1);
        self
    }

    /// The longest pause before building a new session after one expired:
    /// each rebuild waits a random time in [0, `max`], so that a fleet whose
    /// sessions expired together does not reconnect and re-register in one
    /// burst (default min(session timeout / 8, 500 ms); zero: no pause).
    pub fn rebuild_jitter(mut self, max: Duration) -> Self {
        self.rebuild_jitter = Some(max);
        self
    }

    /// From how many wanted paths (watched or registered) under one parent
    /// they share one watch on the parent instead of one each (default 8,
    /// at least 1; `usize::MAX`: never).
    ///
    /// A watch costs the server a watch entry and this process about 900
    /// bytes; a shared one also delivers the events of the parent's other
    /// children, which cost bytes on the wire but no reads. Below the
    /// threshold each path keeps its own watch, so that a process that
    /// registers one member of a large service never receives its
    /// siblings' events. A path under a path this registry already watches
    /// never needs a watch of its own, whatever this setting.
    pub fn share_parent_watch_at(mut self, paths: usize) -> Self {
        self.share_parent_watch_at = paths.max(1);
        self
    }

    /// The delays between connection attempts while no server answers:
    /// from `initial`, doubling up to `max`, each drawn at random from its
    /// upper half so that a fleet does not reconnect in lock-step; they
    /// start over once a connection has lasted `reset_after` (defaults
    /// 100 ms, 10 s, 30 s). A lost connection of a live session is
    /// retried by the client itself; this paces new sessions.
    pub fn reconnect_backoff(mut self, initial: Duration, max: Duration, reset_after: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        self.reconnect_backoff = ReconnectBackoff { initial, max: max.max(initial), calm: reset_after };
        self
    }

    pub(crate) fn reconnect_backoff_or_default(&self) -> ReconnectBackoff {
        self.reconnect_backoff
    }

    /// How many writes of one registration in a row may lose the
    /// connection (a server drops the connection of a request it refuses
    /// to read) before the registration is given up with
    /// [`Error::WriteDropped`](crate::Error::WriteDropped) (default 4, at
    /// least 1). Each new attempt waits longer (250 ms doubling).
    pub fn max_write_drops(mut self, writes: u32) -> Self {
        self.max_write_drops = writes.max(1);
        self
    }

    /// How many read-decide-write rounds one write (a registration, an
    /// unset, a `set_data`) makes while the node keeps changing under it
    /// before it fails with [`Error::Contention`](crate::Error::Contention)
    /// (default 8, at least 1). Every write is conditional on the version
    /// just read, so a round fails only when someone else wrote in between.
    pub fn reconcile_attempts(mut self, rounds: u32) -> Self {
        self.reconcile_attempts = rounds.max(1);
        self
    }

    pub(crate) fn share_parent_watch_at_or_default(&self) -> usize {
        self.share_parent_watch_at
    }

    pub(crate) fn rebuild_jitter_or_default(&self) -> Duration {
        self.rebuild_jitter.unwrap_or_else(|| (self.session_timeout / 8).min(Duration::from_millis(500)))
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
    /// Before connecting, at once:
    /// [`Error::InvalidServers`](crate::Error::InvalidServers) for a
    /// malformed connection string (an empty host, a bad port, an empty
    /// entry); [`Error::InvalidPath`](crate::Error::InvalidPath) for a bad
    /// chroot; [`Error::InvalidArgument`](crate::Error::InvalidArgument) for
    /// a zero session timeout, or `create_chroot` with `readonly`.
    /// When not lazy: [`Error::NoConnection`](crate::Error::NoConnection)
    /// when no server answered within the connect timeout;
    /// [`Error::ChrootMissing`](crate::Error::ChrootMissing) when the chroot
    /// does not exist and `create_chroot` is off.
    ///
    /// # Cancellation safety
    /// Dropping the future before it returns closes the registry it was
    /// building: its tasks end, and a session it opened is closed.
    pub async fn build(self) -> Result<Registry> {
        if let Some(tls) = &self.tls {
            tls.options()?;
        }
        Registry::start(self).await
    }
}

/// SASL DIGEST-MD5 credentials; `Debug` never shows the password.
#[derive(Clone)]
pub(crate) struct SaslDigest {
    pub(crate) user: String,
    pub(crate) password: String,
}

impl std::fmt::Debug for SaslDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslDigest").field("user", &self.user).field("password", &"<redacted>").finish()
    }
}

/// The parts of a connection string: the hosts, as the client takes them,
/// and the chroot (`None` for none or `/`).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Servers {
    pub(crate) hosts: String,
    pub(crate) chroot: Option<String>,
}

/// Checks a connection string as zookeeper-client parses it
/// (`[tcp://|tcp+tls://]HOST[:PORT],...[/chroot]`, a port 1-65535 or none
/// for 2181, IPv6 hosts in brackets), but with an error that says what is
/// wrong, before any connection is tried.
pub(crate) fn parse_servers(servers: &str) -> Result<Servers> {
    let bad = |reason: String| crate::Error::InvalidServers { servers: servers.to_string(), reason };
    let trimmed = servers.trim();
    if trimmed.is_empty() {
        return Err(bad("it is empty".into()));
    }
    if trimmed != servers {
        return Err(bad("it has leading or trailing spaces".into()));
    }
    // The chroot starts at the first '/' of the last entry that is not part
    // of a scheme's "://".
    let (hosts, chroot) = match servers.rsplit_once(',') {
        Some((head, last)) => {
            let (last_hosts, chroot) = split_chroot(last);
            (format!("{head},{last_hosts}"), chroot)
        }
        None => {
            let (hosts, chroot) = split_chroot(servers);
            (hosts.to_string(), chroot)
        }
    };
    for (i, entry) in hosts.split(',').enumerate() {
        let n = i + 1;
        let address =
            entry.strip_prefix("tcp://").or_else(|| entry.strip_prefix("tcp+tls://")).unwrap_or(entry);
        if address.is_empty() {
            return Err(bad(format!("server {n} is empty (a stray or trailing comma?)")));
        }
        let (host, port) = if let Some(rest) = address.strip_prefix('[') {
            let Some((host, after)) = rest.split_once(']') else {
                return Err(bad(format!("server {n} ({entry}) opens '[' without closing it")));
            };
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => {
                        return Err(bad(format!("server {n} ({entry}) has text after ']' that is not :PORT")))
                    }
                },
            }
        } else {
            match address.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (address, None),
            }
        };
        if host.is_empty() {
            return Err(bad(format!("server {n} ({entry}) has no host")));
        }
        if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad(format!("server {n} ({entry}) has spaces or control characters in its host")));
        }
        if let Some(port) = port {
            match port.parse::<u16>() {
                Ok(0) => return Err(bad(format!("server {n} ({entry}) has port 0"))),
                Ok(_) => {}
                Err(_) => {
                    return Err(bad(format!(
                        "server {n} ({entry}) has port {port:?}, which is not a number from 1 to 65535"
                    )))
                }
            }
        }
    }
    if let Some(chroot) = &chroot {
        crate::validate_path(chroot)?;
    }
    Ok(Servers { hosts, chroot: chroot.filter(|c| c != "/") })
}

fn split_chroot(entry: &str) -> (&str, Option<String>) {
    let scheme = if entry.starts_with("tcp://") {
        "tcp://".len()
    } else if entry.starts_with("tcp+tls://") {
        "tcp+tls://".len()
    } else {
        0
    };
    match entry[scheme..].find('/') {
        Some(i) => (&entry[..scheme + i], Some(entry[scheme + i..].to_string())),
        None => (entry, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(servers: &str) -> String {
        match parse_servers(servers) {
            Err(crate::Error::InvalidServers { reason, .. }) => reason,
            other => panic!("{servers:?} gave {other:?}"),
        }
    }

    #[test]
    fn good_connection_strings_split_into_hosts_and_chroot() {
        let ok = |s: &str, hosts: &str, chroot: Option<&str>| {
            assert_eq!(
                parse_servers(s).unwrap(),
                Servers { hosts: hosts.into(), chroot: chroot.map(Into::into) },
                "{s}"
            );
        };
        ok("127.0.0.1:2181", "127.0.0.1:2181", None);
        ok("zk1:2181,zk2:2181/app", "zk1:2181,zk2:2181", Some("/app"));
        ok("zk1,zk2:2182/a/b", "zk1,zk2:2182", Some("/a/b"));
        ok("zk1:2181/", "zk1:2181", None);
        ok("[::1]:2181", "[::1]:2181", None);
        ok("tcp://zk1:2181/app", "tcp://zk1:2181", Some("/app"));
    }

    #[test]
    fn bad_connection_strings_say_what_is_wrong() {
        assert_eq!(reason(""), "it is empty");
        assert!(reason(":21810").contains("has no host"));
        assert!(reason("h:abc").contains("not a number from 1 to 65535"));
        assert!(reason("h:99999").contains("not a number from 1 to 65535"));
        assert!(reason("h:0").contains("port 0"));
        assert!(reason("h:2181,").contains("server 2 is empty"));
        assert!(reason(",h:2181").contains("server 1 is empty"));
        assert!(reason("h 1:2181").contains("spaces"));
        assert!(reason("[::1:2181").contains("'['"));
        assert!(matches!(parse_servers("h:2181/bad/"), Err(crate::Error::InvalidPath { .. })));
    }
}
