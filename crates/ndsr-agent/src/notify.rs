//! systemd readiness (`sd_notify`): `READY=1` once the first sync is done,
//! `STATUS=` lines, `WATCHDOG=1` while `WATCHDOG_USEC` asks for it, and
//! `STOPPING=1` on shutdown, as datagrams to `$NOTIFY_SOCKET` (a path, or
//! an abstract name written `@name`). Without the variable, nothing is
//! sent. A send that fails is logged, never fatal.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Where the service manager listens for our state.
pub(crate) struct Notifier {
    socket: UnixDatagram,
    address: SocketAddr,
    /// What the variable said (for the log).
    shown: String,
}

impl Notifier {
    /// The notifier `$NOTIFY_SOCKET` names, if it is set; `None` (with a
    /// warning) if it cannot be used.
    pub(crate) fn from_env() -> Option<Notifier> {
        let value = std::env::var_os("NOTIFY_SOCKET")?;
        let shown = value.to_string_lossy().into_owned();
        if value.is_empty() {
            return None;
        }
        // Non-blocking: a full socket buffer (systemd not reading) loses a
        // notification, logged, and never stalls the runtime's thread.
        let socket = || -> std::io::Result<UnixDatagram> {
            let socket = UnixDatagram::unbound()?;
            socket.set_nonblocking(true)?;
            Ok(socket)
        };
        match address(value.as_bytes()).and_then(|address| Ok((socket()?, address))) {
            Ok((socket, address)) => Some(Notifier { socket, address, shown }),
            Err(e) => {
                tracing::warn!(socket = %shown, "NOTIFY_SOCKET cannot be used, systemd is not notified: {e}");
                None
            }
        }
    }

    /// Sends `state` (lines such as `READY=1`, `STATUS=...`).
    pub(crate) fn send(&self, state: &str) {
        if let Err(e) = self.socket.send_to_addr(state.as_bytes(), &self.address) {
            tracing::warn!(socket = %self.shown, "cannot notify systemd ({state:?}): {e}");
        }
    }
}

/// The address of `$NOTIFY_SOCKET`: `@name` is an abstract name.
fn address(value: &[u8]) -> std::io::Result<SocketAddr> {
    match value.strip_prefix(b"@") {
        Some(name) => abstract_address(name),
        None => SocketAddr::from_pathname(std::path::Path::new(OsStr::from_bytes(value))),
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_address(name: &[u8]) -> std::io::Result<SocketAddr> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_address(_: &[u8]) -> std::io::Result<SocketAddr> {
    Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "abstract socket names need Linux"))
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, when it is
/// set (and `$WATCHDOG_PID`, if set, is this process).
pub(crate) fn watchdog_interval() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID") {
        if pid.to_str().and_then(|p| p.parse::<u32>().ok()) != Some(std::process::id()) {
            return None;
        }
    }
    let usec = std::env::var("WATCHDOG_USEC").ok()?.parse::<u64>().ok().filter(|u| *u > 0)?;
    Some(Duration::from_micros(usec) / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let path = address(b"/run/systemd/notify").unwrap();
        assert_eq!(path.as_pathname(), Some(std::path::Path::new("/run/systemd/notify")));
        let named = address(b"@ndsr/notify").unwrap();
        assert_eq!(named.as_pathname(), None);
        assert!(!named.is_unnamed());
        assert!(address(&[b'/'; 200]).is_err(), "too long for a socket address");
    }
}
