//! One ZooKeeper JVM process, its watchdog, and readiness probes.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::error::io;
use crate::{Error, Result, ZkInstall};

/// The JVM main class of every ZooKeeper server (standalone or quorum).
pub(crate) const MAIN_CLASS: &str = "org.apache.zookeeper.server.quorum.QuorumPeerMain";

/// A running server JVM. Killed and reaped on drop.
///
/// Beside the JVM runs a watchdog (`sh`) whose standard input is a pipe held
/// by this process: when the test process dies for any reason (even
/// SIGKILL, or a `static` server whose destructor never runs) the pipe
/// closes, and the watchdog kills the JVM and removes the server's
/// directory. Without it a crashed test run would leave servers behind.
pub(crate) struct JvmProcess {
    child: Child,
    watchdog: Option<(Child, ChildStdin)>,
    frozen: bool,
}

impl JvmProcess {
    /// Starts `java ... QuorumPeerMain <config>` with output appended to `log`.
    pub(crate) fn spawn(
        install: &ZkInstall,
        jvm_args: &[String],
        config: &Path,
        log: &Path,
        cleanup_dir: Option<&Path>,
    ) -> Result<JvmProcess> {
        let log_file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(io(format!("opening server log {}", log.display())))?;
        let log_err = log_file.try_clone().map_err(io("duplicating the log file handle"))?;
        let child = Command::new(&install.java)
            .args(jvm_args)
            .arg("-cp")
            .arg(&install.classpath)
            .arg(MAIN_CLASS)
            .arg(config)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .map_err(io(format!("starting {}", install.java.display())))?;
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(r#"read _line; kill -9 "$0" 2>/dev/null; sleep 1; [ -n "$1" ] && rm -rf "$1""#)
            .arg(child.id().to_string())
            .arg(cleanup_dir.map(|d| d.as_os_str().to_owned()).unwrap_or_default())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let mut process = JvmProcess { child, watchdog: None, frozen: false };
        match watchdog {
            Ok(mut dog) => {
                let stdin = dog.stdin.take().expect("stdin was piped");
                process.watchdog = Some((dog, stdin));
            }
            Err(e) => tracing::warn!("no watchdog for the ZooKeeper server (sh failed: {e})"),
        }
        Ok(process)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Has the JVM exited? Returns its status if so.
    pub(crate) fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGSTOP, then waits (up to 5 s) until every thread of the JVM is
    /// stopped: the signal is delivered asynchronously, and a thread still
    /// running could answer a request sent right after.
    pub(crate) fn freeze(&mut self) -> Result<()> {
        self.signal(Signal::SIGSTOP)?;
        self.frozen = true;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !all_threads_stopped(self.child.id()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    pub(crate) fn thaw(&mut self) -> Result<()> {
        self.signal(Signal::SIGCONT)?;
        self.frozen = false;
        Ok(())
    }

    pub(crate) fn is_frozen(&self) -> bool {
        self.frozen
    }

    fn signal(&self, signal: Signal) -> Result<()> {
        let pid =
            i32::try_from(self.child.id()).map_err(|_| Error::InvalidState("pid out of range".into()))?;
        kill(Pid::from_raw(pid), signal).map_err(|e| Error::Io {
            context: format!("sending {signal} to ZooKeeper pid {pid}"),
            source: e.into(),
        })
    }
}

impl Drop for JvmProcess {
    fn drop(&mut self) {
        // The watchdog goes first: once it is gone, closing its pipe can no
        // longer make it kill a pid that we are about to reap (and that the
        // system could then reuse).
        if let Some((mut dog, stdin)) = self.watchdog.take() {
            let _ = dog.kill();
            let _ = dog.wait();
            drop(stdin);
        }
        // SIGKILL also ends a SIGSTOPped process.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a four-letter word (`ruok`, `srvr`, `stat`, `mntr`, ...) to a
/// server and returns its answer.
///
/// # Errors
/// [`Error::Io`] when the server cannot be reached or does not answer
/// within two seconds.
///
/// # Example
///
/// ```no_run
/// let server = ndsr_testkit::ZkServer::new()?;
/// let answer = ndsr_testkit::four_letter_word(&server.connect_string(), "ruok")?;
/// assert_eq!(answer, "imok");
/// # Ok::<(), ndsr_testkit::Error>(())
/// ```
pub fn four_letter_word(address: &str, word: &str) -> Result<String> {
    let addr: SocketAddr = address
        .parse()
        .map_err(|e| Error::InvalidState(format!("`{address}` is not an ip:port address: {e}")))?;
    let context = || format!("asking {address} `{word}`");
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).map_err(io(context()))?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).map_err(io(context()))?;
    stream.write_all(word.as_bytes()).map_err(io(context()))?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).map_err(io(context()))?;
    Ok(answer)
}

/// Whether every thread of process `pid` is stopped (state `T` or `t`
/// in `/proc/PID/task/*/stat`); true where `/proc` cannot say.
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return true };
    tasks.flatten().all(|task| {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { return true };
        // The state follows the command name's closing parenthesis.
        let state = stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next());
        matches!(state, Some("T" | "t" | "Z" | "X") | None)
    })
}

/// Is the server at `address` serving client requests?
pub(crate) fn is_serving(address: &str) -> bool {
    four_letter_word(address, "srvr").is_ok_and(|a| a.contains("Mode:"))
}

/// Is the server answering at `address` the one whose data lives in
/// `data_dir` (its `conf` names it)? Another server on the same port (one
/// that took the port first) answers with another data dir.
pub(crate) fn serves_data_dir(address: &str, data_dir: &Path) -> bool {
    let Ok(conf) = four_letter_word(address, "conf") else { return false };
    let want = data_dir.canonicalize().unwrap_or_else(|_| data_dir.to_path_buf());
    conf.lines().filter_map(|l| l.trim().strip_prefix("dataDir=")).any(|dir| {
        // ZooKeeper reports `<dataDir>/version-2`.
        let dir = Path::new(dir);
        let dir = if dir.ends_with("version-2") { dir.parent().unwrap_or(dir) } else { dir };
        dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf()) == want
    })
}

/// Asks the OS for a free loopback port.
pub(crate) fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("finding a free loopback port"))?;
    let port = listener.local_addr().map_err(io("reading a bound port"))?.port();
    Ok(port)
}

/// The last `lines` lines of a log file (or a note that it is unreadable).
pub(crate) fn log_tail(log: &Path, lines: usize) -> String {
    let mut text = String::new();
    match File::open(log).and_then(|mut f| f.read_to_string(&mut text)) {
        Ok(_) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(log unreadable: {e})"),
    }
}

/// Waits until `address` serves from `data_dir` (so it is our process that
/// answers, not another server that had the port), the process exits, or
/// `timeout` passes.
pub(crate) fn wait_serving(
    process: &mut JvmProcess,
    address: &str,
    data_dir: &Path,
    log: &Path,
    timeout: Duration,
) -> Result<()> {
    let start = Instant::now();
    loop {
        if let Some(status) = process.exited() {
            return Err(Error::StartFailed {
                reason: format!("the JVM exited with {status}"),
                log: log.to_path_buf(),
                log_tail: log_tail(log, 30),
            });
        }
        if is_serving(address) && serves_data_dir(address, data_dir) {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(Error::StartFailed {
                reason: format!("{address} was not serving after {timeout:?}"),
                log: log.to_path_buf(),
                log_tail: log_tail(log, 30),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
