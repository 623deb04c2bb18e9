//! dnsmasq (Debian's, `/usr/sbin/dnsmasq`) as the DNS case's peer: a
//! foreground process on a free loopback port, answering only from a hosts
//! file of ours, with no upstream, no system resolver and no DHCP; killed
//! on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian puts it (package dnsmasq-base).
const BINARY: &str = "/usr/sbin/dnsmasq";

/// The dnsmasq binary: `NDSR_DNSMASQ`, or Debian's.
pub fn binary() -> Result<PathBuf, String> {
    let path = std::env::var_os("NDSR_DNSMASQ").map_or_else(|| PathBuf::from(BINARY), PathBuf::from);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found: dnsmasq is this case's peer (Debian's dnsmasq-base: scripts/setup.sh installs it)",
            path.display()
        ))
    }
}

/// dnsmasq's version line ("Dnsmasq version 2.90 ...").
pub fn version(binary: &Path) -> String {
    Command::new(binary)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(str::to_string))
        .unwrap_or_default()
}

/// A running dnsmasq; killed on drop.
pub struct Dnsmasq {
    child: Child,
    /// Where it answers (UDP and TCP).
    pub address: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free for both UDP and TCP on 127.0.0.1 (the sockets are closed
/// again: dnsmasq binds it next).
fn free_port() -> Result<u16, String> {
    for _ in 0..20 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = udp.local_addr().map_err(|e| e.to_string())?.port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err("no port free for both UDP and TCP".into())
}

/// Waits until `child` has logged its start (its sockets are bound by
/// then), or exited (a port taken: the error it printed).
fn started(mut child: Child, log: &Path) -> Result<Child, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
                }
                return Err(format!("dnsmasq exited {status}: {}", stderr.trim()));
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("dnsmasq: {e}"));
            }
            Ok(None) => {}
        }
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("started, version") {
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("dnsmasq did not start within 10 s: {text}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The user running this process, for `--user` (dnsmasq started as root
/// would otherwise switch to another user).
fn user() -> Result<String, String> {
    let out = Command::new("id").arg("-un").output().map_err(|e| format!("id -un: {e}"))?;
    let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && !name.is_empty() {
        Ok(name)
    } else {
        Err("id -un gave no user name".into())
    }
}

impl Dnsmasq {
    /// Starts dnsmasq answering from `hosts` (a hosts file's text). It may
    /// not answer yet: the caller polls it.
    pub fn start(binary: &Path, hosts: &str) -> Result<Dnsmasq, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let file = dir.path().join("hosts");
        std::fs::write(&file, hosts).map_err(|e| e.to_string())?;
        let user = user()?;
        let mut last = String::new();
        // A port found free may be taken before dnsmasq binds it: a few tries.
        for _ in 0..5 {
            let port = free_port()?;
            let log = dir.path().join("dnsmasq.log");
            let _ = std::fs::remove_file(&log);
            let child = Command::new(binary)
                .arg("--keep-in-foreground")
                .arg("--conf-file=/dev/null") // not /etc/dnsmasq.conf
                .arg("--no-resolv") // no upstream from /etc/resolv.conf
                .arg("--no-poll")
                .arg("--no-hosts") // not /etc/hosts
                .arg(format!("--addn-hosts={}", file.display()))
                .arg(format!("--port={port}"))
                .arg("--listen-address=127.0.0.1")
                .arg("--bind-interfaces")
                .arg("--pid-file=") // none
                .arg(format!("--user={user}"))
                .arg(format!("--log-facility={}", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("starting {}: {e}", binary.display()))?;
            match started(child, &log) {
                Ok(child) => {
                    return Ok(Dnsmasq {
                        child,
                        address: SocketAddr::from(([127, 0, 0, 1], port)),
                        _dir: dir,
                    })
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}
