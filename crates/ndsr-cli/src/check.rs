//! Health checks for `ndsr register`, and the rise/fall hysteresis.

use std::time::Duration;

use tokio::net::TcpStream;

/// One health check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// A TCP connection to HOST:PORT succeeds.
    Tcp(String),
    /// An HTTP GET answers 2xx.
    Http(String),
    /// `sh -c CMD` exits 0.
    Cmd(String),
}

impl Check {
    /// A TCP check of `target`, which must be HOST:PORT.
    ///
    /// # Errors
    /// What is wrong with `target`.
    pub fn tcp(target: &str) -> Result<Check, String> {
        let bad =
            |why: &str| Err(format!("--check-tcp {target:?}: {why}; expected HOST:PORT, e.g. 10.0.0.1:80"));
        let Some((host, port)) = target.rsplit_once(':') else { return bad("no port") };
        let bracketed = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
        if bracketed.is_none() && host.contains(':') {
            return bad("an IPv6 address needs brackets, e.g. [::1]:80");
        }
        let host = bracketed.unwrap_or(host);
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control() || c == '/') {
            return bad("no valid host");
        }
        match port.parse::<u16>() {
            Ok(0) | Err(_) => bad("the port is not a number from 1 to 65535"),
            Ok(_) => Ok(Check::Tcp(target.to_string())),
        }
    }

    /// An HTTP check of `url`, which must be an absolute http:// or
    /// https:// URL with a host.
    ///
    /// # Errors
    /// What is wrong with `url`.
    pub fn http(url: &str) -> Result<Check, String> {
        let bad = |why: String| {
            Err(format!("--check-http {url:?}: {why}; expected a URL like http://127.0.0.1:8080/health"))
        };
        let uri = match url.parse::<ureq::http::Uri>() {
            Ok(uri) => uri,
            Err(e) => return bad(format!("not a URL ({e})")),
        };
        match uri.scheme_str() {
            Some("http" | "https") => {}
            Some(other) => return bad(format!("the scheme {other:?} is not http or https")),
            None => return bad("no http:// or https:// scheme".into()),
        }
        if uri.host().is_none_or(str::is_empty) {
            return bad("no host".into());
        }
        Ok(Check::Http(url.to_string()))
    }

    /// Runs the check, bounded by `timeout`; `Err` says why it failed.
    pub async fn run(&self, timeout: Duration) -> Result<(), String> {
        let run = async {
            match self {
                Check::Tcp(address) => {
                    TcpStream::connect(address).await.map(drop).map_err(|e| format!("tcp {address}: {e}"))
                }
                Check::Http(url) => {
                    let url = url.clone();
                    let get = tokio::task::spawn_blocking(move || {
                        let agent: ureq::Agent =
                            ureq::Agent::config_builder().timeout_global(Some(timeout)).build().into();
                        agent.get(&url).call().map(drop).map_err(|e| format!("http {url}: {e}"))
                    });
                    get.await.map_err(|e| e.to_string())?
                }
                Check::Cmd(cmd) => {
                    let status = tokio::process::Command::new("sh")
                        .arg("-c")
                        .arg(cmd)
                        .stdin(std::process::Stdio::null())
                        .stdout(std::process::Stdio::null())
                        .kill_on_drop(true)
                        .status()
                        .await
                        .map_err(|e| format!("cmd: {e}"))?;
                    if status.success() {
                        Ok(())
                    } else {
                        Err(format!("cmd `{cmd}` exited with {status}"))
                    }
                }
            }
        };
        tokio::time::timeout(timeout, run)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
    }
}

/// The shortest time between health checks: each check must finish within
/// the interval, and shorter ones would flap the node.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// Checks a health-check interval; the error names it as `name` says
/// (`--interval`, `interval`).
pub fn check_interval(name: &str, interval: Duration) -> Result<(), String> {
    if interval < MIN_INTERVAL {
        return Err(format!(
            "{name} {} is too short: checks need at least {}",
            humantime::format_duration(interval),
            humantime::format_duration(MIN_INTERVAL)
        ));
    }
    Ok(())
}

/// Up/down state with hysteresis, as SmartStack's nerve: down at start; up
/// after `rise` successes in a row; down after `fall` failures in a row.
#[derive(Debug)]
pub struct Health {
    rise: u32,
    fall: u32,
    up: bool,
    streak: u32,
}

impl Health {
    /// Starts down.
    pub fn new(rise: u32, fall: u32) -> Health {
        Health { rise: rise.max(1), fall: fall.max(1), up: false, streak: 0 }
    }

    /// Starts up (a registration taken over from an earlier hold).
    pub fn already_up(mut self) -> Health {
        self.up = true;
        self
    }

    /// Is it up now?
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Records a check result; returns the new state if it changed.
    pub fn observe(&mut self, ok: bool) -> Option<bool> {
        if ok == self.up {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if ok { self.rise } else { self.fall };
        if self.streak >= needed {
            self.up = ok;
            self.streak = 0;
            return Some(ok);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rises_and_falls_with_hysteresis() {
        let mut h = Health::new(2, 3);
        assert_eq!(h.observe(true), None);
        assert_eq!(h.observe(true), Some(true));
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(true), None, "a success resets the failure streak");
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(false), Some(false));
        assert_eq!(h.observe(false), None);
    }

    #[test]
    fn rise_one_registers_at_the_first_success() {
        let mut h = Health::new(1, 1);
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(true), Some(true));
        assert_eq!(h.observe(false), Some(false));
    }

    #[test]
    fn check_targets_are_validated() {
        assert!(Check::tcp("127.0.0.1:80").is_ok());
        assert!(Check::tcp("localhost:8080").is_ok());
        assert!(Check::tcp("[::1]:80").is_ok());
        for bad in
            ["nonsense", ":80", "h:", "h:0", "h:99999", "h:abc", "a b:80", "::1:80", "127.0.0.1:127.0.0.1:80"]
        {
            assert!(Check::tcp(bad).is_err(), "{bad}");
        }
        assert!(Check::http("http://127.0.0.1:8080/health").is_ok());
        assert!(Check::http("https://example.invalid/").is_ok());
        for bad in ["not a url", "/health", "ftp://h/x", "127.0.0.1:80", "http://"] {
            assert!(Check::http(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn checks_report_failures() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = closed.local_addr().unwrap().to_string();
        drop(closed);
        assert!(Check::Tcp(address).run(Duration::from_secs(2)).await.is_err());
        assert!(Check::Cmd("exit 3".into()).run(Duration::from_secs(5)).await.is_err());
        assert!(Check::Cmd("true".into()).run(Duration::from_secs(5)).await.is_ok());
        let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(Check::Tcp(open.local_addr().unwrap().to_string()).run(Duration::from_secs(2)).await.is_ok());
    }
}
