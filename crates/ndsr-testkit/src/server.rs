//! [`ZkServer`]: one standalone ZooKeeper server with fault controls.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use zookeeper_client::{Client, SessionInfo, SessionState};

use crate::error::io;
use crate::process::{free_port, wait_serving, JvmProcess};
use crate::{Error, Result, ZkInstall};

/// Default `tickTime` of test servers: short, so that session timeouts of
/// a second or two are accepted (the server's minimum is two ticks).
pub const DEFAULT_TICK: Duration = Duration::from_millis(200);

/// Options for a [`ZkServer`]; see [`ZkServer::builder`].
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
///
/// let server = ndsr_testkit::ZkServer::builder()
///     .tick(Duration::from_millis(100)) // session timeouts down to 200 ms
///     .force_sync(true)
///     .start()?;
/// # Ok::<(), ndsr_testkit::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ZkServerBuilder {
    port: Option<u16>,
    data_dir: Option<PathBuf>,
    tick: Duration,
    max_session_timeout: Duration,
    start_timeout: Duration,
    force_sync: bool,
    jvm_args: Vec<String>,
    tls: bool,
    sasl_users: Vec<(String, String)>,
    pub(crate) quorum: Option<Quorum>,
}

/// Netty jars a TLS server needs beyond what Debian's server jar names.
const NETTY_FOR_TLS: [&str; 3] =
    ["netty-codec.jar", "netty-resolver.jar", "netty-transport-native-unix-common.jar"];

/// A member's place in an ensemble: its id and the `server.N` lines.
#[derive(Clone, Debug)]
pub(crate) struct Quorum {
    pub(crate) id: u32,
    pub(crate) servers: String,
}

impl Default for ZkServerBuilder {
    fn default() -> Self {
        ZkServerBuilder {
            port: None,
            data_dir: None,
            tick: DEFAULT_TICK,
            max_session_timeout: Duration::from_secs(60),
            start_timeout: Duration::from_secs(60),
            force_sync: false,
            jvm_args: vec![
                // A small heap and the client compiler: test servers start
                // faster and leave the machine's two cores to the tests.
                "-Xmx256m".into(),
                "-XX:+UseSerialGC".into(),
                "-XX:TieredStopAtLevel=1".into(),
            ],
            tls: false,
            sasl_users: Vec::new(),
            quorum: None,
        }
    }
}

impl ZkServerBuilder {
    /// Listens on this loopback port instead of a free one the OS picks.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Keeps data in this directory (created if missing, never removed)
    /// instead of a temporary one.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// The server's `tickTime` (default 200 ms). Session timeouts are
    /// bounded below by two ticks.
    pub fn tick(mut self, tick: Duration) -> Self {
        self.tick = tick;
        self
    }

    /// How long to wait for the server to serve before giving up
    /// (default 60 s).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// fsync the transaction log before acknowledging writes (default off:
    /// a killed server loses nothing without it, only a machine crash would).
    pub fn force_sync(mut self, on: bool) -> Self {
        self.force_sync = on;
        self
    }

    /// Replaces the JVM options (default: a 256 MiB heap, serial GC and the
    /// client compiler, which suit short tests; benchmarks may want the
    /// full JIT).
    pub fn jvm_args(mut self, args: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.jvm_args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Also serves TLS on a second port ([`ZkServer::tls_port`]), through
    /// Netty, with certificates made now ([`ZkServer::tls`]); TLS clients
    /// must present a certificate of the same CA.
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }

    /// Requires SASL: clients must authenticate with DIGEST-MD5 as one of
    /// the users given (a JAAS file the kit writes), or their requests are
    /// refused and their sessions closed (`enforce.auth.enabled`).
    pub fn sasl_user(mut self, user: &str, password: &str) -> Self {
        self.sasl_users.push((user.to_string(), password.to_string()));
        self
    }

    /// Starts the server and waits until it serves.
    ///
    /// # Errors
    /// [`Error::NotInstalled`] without ZooKeeper or Java;
    /// [`Error::StartFailed`] (with the log's tail) when the server exits or
    /// does not serve within the start timeout.
    pub fn start(self) -> Result<ZkServer> {
        let mut server = self.prepare()?;
        // A port the OS handed out can be taken by someone else before the
        // JVM binds it: retry with a fresh one, but never when the caller
        // asked for a port.
        let attempts = if self.port.is_some() { 1 } else { 3 };
        let mut last_error = None;
        for _ in 0..attempts {
            if self.port.is_none() {
                server.port = free_port()?;
            }
            if let Some((port, _)) = &mut server.tls {
                *port = free_port()?;
            }
            match server.start() {
                Ok(()) => return Ok(server),
                Err(e) => {
                    let taken = matches!(&e, Error::StartFailed { log_tail, .. }
                        if log_tail.contains("Address already in use"));
                    last_error = Some(e);
                    if !taken {
                        break;
                    }
                }
            }
        }
        Err(last_error.expect("at least one attempt was made"))
    }

    /// Makes the server's directories without starting it.
    pub(crate) fn prepare(&self) -> Result<ZkServer> {
        let mut install = ZkInstall::find()?;
        if self.tls {
            // Debian's server jar names Netty's transport but not the codec
            // and resolver that its TLS (Netty) connections need.
            for jar in NETTY_FOR_TLS {
                let jar = Path::new("/usr/share/java").join(jar);
                if jar.exists() && !install.classpath.contains(jar.to_string_lossy().as_ref()) {
                    install.classpath = format!("{}:{}", install.classpath, jar.display());
                }
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("ndsr-zk-")
            .tempdir()
            .map_err(io("creating the server's temp dir"))?;
        let data_dir = self.data_dir.clone().unwrap_or_else(|| dir.path().join("data"));
        std::fs::create_dir_all(&data_dir).map_err(io(format!("creating {}", data_dir.display())))?;
        let tls = match self.tls {
            true => Some((0, crate::tls::TlsMaterial::generate(&dir.path().join("tls"))?)),
            false => None,
        };
        Ok(ZkServer {
            install,
            port: self.port.unwrap_or(0),
            data_dir,
            options: self.clone(),
            process: Mutex::new(None),
            tls,
            dir,
        })
    }
}

/// One standalone ZooKeeper server on a loopback port, with its own data
/// directory, `tickTime` 200 ms, four-letter words enabled and the admin
/// server off.
///
/// Stopped (killed, then reaped) and its temp dir removed when dropped, also
/// when a test panics. Every control waits until the server is in the state
/// it names before returning, and blocks the calling thread while it does:
/// call it from a multi-thread Tokio runtime or `spawn_blocking`.
///
/// # Example
///
/// ```no_run
/// use ndsr_testkit::ZkServer;
///
/// let server = ZkServer::new()?;
/// println!("connect to {}", server.connect_string());
/// server.freeze()?; // SIGSTOP: the server hangs, connections time out
/// server.thaw()?;
/// server.restart_wiped()?; // same port, empty data: every session is gone
/// # Ok::<(), ndsr_testkit::Error>(())
/// ```
pub struct ZkServer {
    install: ZkInstall,
    port: u16,
    data_dir: PathBuf,
    options: ZkServerBuilder,
    process: Mutex<Option<JvmProcess>>,
    /// The TLS port and certificates, when it serves TLS.
    tls: Option<(u16, crate::tls::TlsMaterial)>,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for ZkServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZkServer")
            .field("address", &self.connect_string())
            .field("pid", &self.pid())
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

impl ZkServer {
    /// Starts a server with the default options and waits until it serves.
    ///
    /// # Errors
    /// See [`ZkServerBuilder::start`].
    pub fn new() -> Result<ZkServer> {
        ZkServer::builder().start()
    }

    /// Options for a server: port, data dir, tick, JVM flags.
    pub fn builder() -> ZkServerBuilder {
        ZkServerBuilder::default()
    }

    /// One server shared by all the tests of a test binary that do not
    /// injure it (no stop, freeze or wipe). Started on first use; killed by
    /// its watchdog when the test process exits.
    ///
    /// # Panics
    /// If the server cannot be started: the message says why (e.g. how to
    /// install ZooKeeper).
    pub fn shared() -> &'static ZkServer {
        static SHARED: OnceLock<ZkServer> = OnceLock::new();
        SHARED.get_or_init(|| match ZkServer::new() {
            Ok(server) => server,
            Err(e) => panic!("cannot start the shared ZooKeeper test server: {e}"),
        })
    }

    /// `127.0.0.1:PORT`, for a client's connection string.
    pub fn connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TLS port, when built with [`ZkServerBuilder::tls`].
    pub fn tls_port(&self) -> Option<u16> {
        self.tls.as_ref().map(|(port, _)| *port)
    }

    /// `127.0.0.1:TLS_PORT`, when built with [`ZkServerBuilder::tls`].
    pub fn tls_connect_string(&self) -> Option<String> {
        self.tls_port().map(|port| format!("127.0.0.1:{port}"))
    }

    /// The CA and a client certificate and key the TLS port accepts (and a
    /// CA and client that it does not), when built with
    /// [`ZkServerBuilder::tls`].
    pub fn tls(&self) -> Option<&crate::tls::TlsMaterial> {
        self.tls.as_ref().map(|(_, material)| material)
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server's log file (stdout and stderr of the JVM).
    pub fn log_file(&self) -> PathBuf {
        self.work_dir().join("zookeeper.log")
    }

    /// The JVM's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.lock().as_ref().map(JvmProcess::pid)
    }

    /// How the server's JVM ended, if it died on its own (not stopped by
    /// [`stop`](Self::stop)); `None` while it runs or after a stop.
    pub fn exit_status(&self) -> Option<std::process::ExitStatus> {
        self.lock().as_mut().and_then(JvmProcess::exited)
    }

    /// Is the server process running (possibly frozen)?
    pub fn is_running(&self) -> bool {
        self.lock().is_some()
    }

    /// Stops the server: kills the JVM and reaps it. New connections are
    /// refused from then on. Data and sessions survive for [`start`](Self::start).
    ///
    /// # Errors
    /// None today; the `Result` leaves room for platforms where killing fails.
    pub fn stop(&self) -> Result<()> {
        self.lock().take();
        Ok(())
    }

    /// Starts the server again on the same port and data directory, and
    /// waits until it serves. Sessions whose timeout has not passed are
    /// still valid. A running server is left as it is.
    ///
    /// # Errors
    /// [`Error::StartFailed`] with the log's tail.
    pub fn start(&self) -> Result<()> {
        if self.is_running() {
            return Ok(());
        }
        self.spawn()?;
        self.wait_serving()
    }

    /// Starts the JVM without waiting for it to serve.
    pub(crate) fn spawn(&self) -> Result<()> {
        let mut process = self.lock();
        if process.is_some() {
            return Ok(());
        }
        let config = self.work_dir().join("zoo.cfg");
        std::fs::write(&config, self.config()).map_err(io("writing zoo.cfg"))?;
        let mut jvm_args = self.options.jvm_args.clone();
        jvm_args.push("-Dzookeeper.jmx.log4j.disable=true".into());
        jvm_args.push("-Djava.net.preferIPv4Stack=true".into());
        jvm_args.push("-Dorg.slf4j.simpleLogger.showDateTime=true".into());
        if self.tls.is_some() {
            jvm_args.push(
                "-Dzookeeper.serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory".into(),
            );
        }
        if !self.options.sasl_users.is_empty() {
            let users: String = self
                .options
                .sasl_users
                .iter()
                .map(|(user, password)| format!("\n  user_{user}=\"{password}\""))
                .collect();
            let jaas = self.work_dir().join("jaas.conf");
            let text = format!(
                "Server {{\n  org.apache.zookeeper.server.auth.DigestLoginModule required{users};\n}};\n"
            );
            std::fs::write(&jaas, text).map_err(io("writing jaas.conf"))?;
            jvm_args.push(format!("-Djava.security.auth.login.config={}", jaas.display()));
        }
        if let Some(quorum) = &self.options.quorum {
            std::fs::write(self.data_dir.join("myid"), format!("{}\n", quorum.id))
                .map_err(io("writing myid"))?;
        }
        let jvm =
            JvmProcess::spawn(&self.install, &jvm_args, &config, &self.log_file(), Some(&self.work_dir()))?;
        *process = Some(jvm);
        Ok(())
    }

    /// Waits until the spawned server serves; kills it if it does not.
    pub(crate) fn wait_serving(&self) -> Result<()> {
        let mut process = self.lock();
        let Some(jvm) = process.as_mut() else {
            return Err(Error::InvalidState("the server is not running".into()));
        };
        let result = wait_serving(
            jvm,
            &self.connect_string(),
            &self.data_dir,
            &self.log_file(),
            self.options.start_timeout,
        );
        if result.is_err() {
            process.take();
        }
        result
    }

    /// [`stop`](Self::stop) then [`start`](Self::start).
    ///
    /// # Errors
    /// As [`start`](Self::start).
    pub fn restart(&self) -> Result<()> {
        self.stop()?;
        self.start()
    }

    /// Stops the server, empties its data directory and starts it again:
    /// every node and session is gone; clients of old sessions see them
    /// expire.
    ///
    /// # Errors
    /// As [`start`](Self::start), or [`Error::Io`] if the data cannot be removed.
    pub fn restart_wiped(&self) -> Result<()> {
        self.stop()?;
        std::fs::remove_dir_all(&self.data_dir).map_err(io("wiping the data dir"))?;
        std::fs::create_dir_all(&self.data_dir).map_err(io("re-creating the data dir"))?;
        self.start()
    }

    /// Freezes the server with SIGSTOP: it keeps its port and connections
    /// but answers nothing, like a machine that hangs.
    ///
    /// # Errors
    /// [`Error::InvalidState`] when the server is not running.
    pub fn freeze(&self) -> Result<()> {
        match self.lock().as_mut() {
            Some(jvm) => jvm.freeze(),
            None => Err(Error::InvalidState("freeze: the server is not running".into())),
        }
    }

    /// Resumes a frozen server with SIGCONT.
    ///
    /// # Errors
    /// [`Error::InvalidState`] when the server is not running or not frozen.
    pub fn thaw(&self) -> Result<()> {
        match self.lock().as_mut() {
            Some(jvm) if jvm.is_frozen() => jvm.thaw(),
            _ => Err(Error::InvalidState("thaw: the server is not frozen".into())),
        }
    }

    /// Forces a real server-side expiry of `session` on this server; see
    /// [`expire_session`].
    ///
    /// # Errors
    /// As [`expire_session`].
    pub async fn expire_session(&self, session: &SessionInfo) -> Result<()> {
        expire_session(&self.connect_string(), session).await
    }

    fn lock(&self) -> MutexGuard<'_, Option<JvmProcess>> {
        // A panic while holding the lock leaves a consistent Option behind.
        self.process.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn work_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn config(&self) -> String {
        let tick = self.options.tick.as_millis().max(1);
        format!(
            "tickTime={tick}\ninitLimit=10\nsyncLimit=5\ndataDir={data}\nclientPort={port}\n\
             clientPortAddress=127.0.0.1\nadmin.enableServer=false\n4lw.commands.whitelist=*\n\
             minSessionTimeout={min}\nmaxSessionTimeout={max}\nmaxClientCnxns=0\nforceSync={sync}\n{quorum}",
            data = self.data_dir.display(),
            port = self.port,
            min = 2 * tick,
            max = self.options.max_session_timeout.as_millis(),
            sync = if self.options.force_sync { "yes" } else { "no" },
            quorum = self.options.quorum.as_ref().map_or("", |q| q.servers.as_str()),
        ) + &self.tls.as_ref().map_or(String::new(), |(port, material)| material.config(*port))
            + if self.options.sasl_users.is_empty() {
                ""
            } else {
                "authProvider.sasl=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n\
                 enforce.auth.enabled=true\nenforce.auth.schemes=sasl\nsessionRequireClientSASLAuth=true\n"
            }
    }
}

impl Drop for ZkServer {
    fn drop(&mut self) {
        // Kill and reap the JVM before the temp dir goes away.
        self.lock().take();
    }
}

/// Forces a real server-side expiry of a session, as Curator's
/// `KillSession` does: a second client connects with the same session id
/// and password, then closes it. The session's ephemeral nodes are deleted
/// and its own client is told `Expired` when it next talks to the server.
///
/// # Notable behaviors
/// The session's own client, if connected, takes the session back at once
/// whenever the server hands it to the takeover connection (the server
/// closes the other connection of a session that moves, logging
/// "CancelledKeyException causing close of session"), while the takeover
/// backs off (0.2, 0.4, 0.8 s ...): a tug of war that can last seconds,
/// each round one more disconnect and reconnect for the client (2 to 11
/// rounds, up to 14 s, were measured). This function retries until its
/// takeover wins. A test that counts reconnects or disconnects, or wants a
/// fast, repeatable expiry, routes the client through a
/// [`FaultProxy`](crate::FaultProxy): `cut()` it, expire the session here,
/// then `heal()`: the client's first reconnect is told the session expired.
/// A server restart alone costs a connected client one reconnect.
///
/// # Errors
/// [`Error::ZooKeeper`] when ten takeovers fail to connect, or none of
/// them closes the session within five seconds.
///
/// # Example
///
/// ```no_run
/// # async fn demo() -> ndsr_testkit::Result<()> {
/// let server = ndsr_testkit::ZkServer::new()?;
/// let client = zookeeper_client::Client::connect(&server.connect_string()).await.unwrap();
/// server.expire_session(client.session()).await?;
/// # Ok(()) }
/// ```
pub async fn expire_session(connect_string: &str, session: &SessionInfo) -> Result<()> {
    const ATTEMPTS: u32 = 30;
    // The session's own client reconnects as soon as the server moves the
    // session to the takeover connection, and may take it back before the
    // takeover's handshake ends: try again, each attempt short.
    // Each round the client loses, its reconnect backs off longer, so the
    // takeover wins in the end; 10 rounds were not always enough in CI.
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let attempt = Client::connector()
            .with_session(session.clone())
            .with_session_timeout(Duration::from_secs(10))
            .with_connection_timeout(Duration::from_secs(2))
            .connect(connect_string)
            .await;
        match attempt {
            Ok(client) => {
                let mut state = client.state_watcher();
                // The session ends when the last clone of its client is
                // dropped (zookeeper-client has no close()).
                drop(client);
                let closed = tokio::time::timeout(Duration::from_secs(5), async {
                    loop {
                        if matches!(state.changed().await, SessionState::Closed | SessionState::Expired) {
                            break;
                        }
                    }
                })
                .await;
                match closed {
                    Ok(()) => return Ok(()),
                    // The session's own client took it back before our close
                    // reached the server: take it over again.
                    Err(_) => last = Some(zookeeper_client::Error::Timeout),
                }
            }
            // Already gone: the goal is reached.
            Err(zookeeper_client::Error::SessionExpired) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(Error::ZooKeeper {
        context: format!("taking over the session to expire it ({ATTEMPTS} attempts)"),
        source: last.expect("an attempt failed"),
    })
}
