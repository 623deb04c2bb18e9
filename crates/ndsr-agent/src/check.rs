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

    /// The check as its owner wrote it, e.g. `tcp 127.0.0.1:80`, `http
    /// URL` or `cmd COMMAND`: for the owner's eyes only (a command line or a
    /// URL may hold a secret).
    pub fn describe(&self) -> String {
        match self {
            Check::Tcp(target) => format!("tcp {target}"),
            Check::Http(url) => format!("http {url}"),
            Check::Cmd(cmd) => format!("cmd {cmd}"),
        }
    }

    /// The kind of check and its target, with nothing secret: `tcp
    /// HOST:PORT`, `http URL` without its userinfo, query and fragment, or
    /// `cmd` without the command line.
    pub fn summary(&self) -> String {
        match self {
            Check::Tcp(target) => format!("tcp {target}"),
            Check::Http(url) => format!("http {}", public_url(url)),
            Check::Cmd(_) => "cmd".to_string(),
        }
    }

    /// The host a TCP or HTTP check connects to, as written (an IPv6
    /// literal without its brackets); `None` for a command.
    pub fn host(&self) -> Option<String> {
        let host = match self {
            Check::Tcp(target) => target.rsplit_once(':')?.0.to_string(),
            Check::Http(url) => url.parse::<ureq::http::Uri>().ok()?.host()?.to_string(),
            Check::Cmd(_) => return None,
        };
        Some(host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).map_or(host.clone(), str::to_string))
    }

    /// Whether the check's target is this host: a TCP or HTTP check whose
    /// host is a loopback IP literal (`127.0.0.1`, `[::1]`, ...). Not
    /// `localhost`: a name is resolved by the system resolver (`/etc/hosts`,
    /// search domains), which decides where it goes. A command is not a
    /// target (`false`).
    pub fn targets_loopback(&self) -> bool {
        self.host().is_some_and(|host| is_loopback_ip(&host))
    }

    /// Runs the check, bounded by `timeout`; `Err` says why it failed.
    pub async fn run(&self, timeout: Duration) -> Result<(), String> {
        let run = async {
            match self {
                Check::Tcp(address) => {
                    TcpStream::connect(address).await.map(drop).map_err(|e| format!("tcp {address}: {e}"))
                }
                Check::Http(url) => {
                    let (url, shown) = (url.clone(), public_url(url));
                    let get = tokio::task::spawn_blocking(move || http_get(&url, timeout));
                    get.await.map_err(|e| e.to_string())?.map_err(|e| format!("http {shown}: {e}"))
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
                        // Not the command line: it may hold a secret, and
                        // this reason is shown to readers without the token.
                        Err(format!("cmd exited with {status}"))
                    }
                }
            }
        };
        tokio::time::timeout(timeout, run)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
    }
}

/// A GET of `url` within `timeout`: `Ok` for a 2xx answer. Redirects are
/// not followed (a check of a loopback URL stays on loopback), and no proxy
/// is used (the check is of the target itself).
fn http_get(url: &str, timeout: Duration) -> Result<(), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .max_redirects(0)
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into();
    let response = agent.get(url).call().map_err(|e| e.to_string())?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else if status.is_redirection() {
        Err(format!("answered {status} (a redirect, not followed: a check passes on 2xx)"))
    } else {
        Err(format!("answered {status}"))
    }
}

/// `url` without its userinfo, query and fragment (which may hold
/// secrets): scheme, host, port and path.
pub fn public_url(url: &str) -> String {
    let Ok(uri) = url.parse::<ureq::http::Uri>() else { return "(not a URL)".to_string() };
    let scheme = uri.scheme_str().unwrap_or("http");
    let host = uri.host().unwrap_or_default();
    let port = uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
    format!("{scheme}://{host}{port}{}", uri.path())
}

/// Is `host` (an IPv6 literal may be in brackets) a loopback IP literal?
/// Names are not, `localhost` included: what they resolve to is the
/// resolver's choice, and can change.
pub fn is_loopback_ip(host: &str) -> bool {
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
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

    #[test]
    fn summaries_hide_commands_and_url_secrets() {
        assert_eq!(Check::Cmd("curl -u admin:s3cret x".into()).summary(), "cmd");
        assert_eq!(
            Check::Http("https://admin:s3cret@127.0.0.1:8443/health?key=s3cret#s3cret".into()).summary(),
            "http https://127.0.0.1:8443/health"
        );
        assert_eq!(Check::Http("http://[::1]/".into()).summary(), "http http://[::1]/");
        assert_eq!(Check::Tcp("10.0.0.1:80".into()).summary(), "tcp 10.0.0.1:80");
        assert_eq!(Check::Cmd("true # s3cret".into()).describe(), "cmd true # s3cret");
    }

    #[test]
    fn only_loopback_addresses_are_loopback() {
        for local in ["127.0.0.1:80", "127.8.9.1:80", "[::1]:80"] {
            assert!(Check::tcp(local).unwrap().targets_loopback(), "{local}");
        }
        for url in ["http://127.0.0.1:8080/h", "https://[::1]/", "http://[::1]:80/", "http://x@127.0.0.1/"] {
            assert!(Check::http(url).unwrap().targets_loopback(), "{url}");
        }
        // localhost is a name: the resolver (/etc/hosts, search domains)
        // decides where it goes.
        for remote in [
            "10.0.0.1:80",
            "example.com:80",
            "localhost:80",
            "LOCALHOST:80",
            "localhost.:80",
            "localhost.evil.example:80",
            "0.0.0.0:80",
            "[::2]:80",
        ] {
            assert!(!Check::tcp(remote).unwrap().targets_loopback(), "{remote}");
        }
        for url in [
            "http://10.0.0.1/",
            "https://localhost/",
            "http://LocalHost:8080/h",
            "http://127.0.0.1.evil.example/",
            "http://127.0.0.1@evil.example/",
        ] {
            assert!(!Check::http(url).unwrap().targets_loopback(), "{url}");
        }
        assert!(!Check::Cmd("true".into()).targets_loopback());
        assert_eq!(Check::Http("http://u@[::1]:80/x".into()).host().as_deref(), Some("::1"));
        assert_eq!(Check::Tcp("LocalHost:80".into()).host().as_deref(), Some("LocalHost"));
        assert_eq!(Check::Cmd("true".into()).host(), None);
    }

    #[tokio::test]
    async fn http_checks_pass_on_2xx_and_never_follow_a_redirect() {
        use std::io::{Read, Write};
        // A server that answers each connection with the next canned answer.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/health", listener.local_addr().unwrap());
        let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let redirect = format!("http://{}/elsewhere", target.local_addr().unwrap());
        let answers = [
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
            format!("HTTP/1.1 302 Found\r\nLocation: {redirect}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
        ];
        let server = std::thread::spawn(move || {
            for answer in answers {
                let (mut stream, _) = listener.accept().unwrap();
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                stream.write_all(answer.as_bytes()).unwrap();
            }
        });
        let check = Check::http(&url).unwrap();
        assert!(check.run(Duration::from_secs(10)).await.is_ok(), "200 passes");
        let redirected = check.run(Duration::from_secs(10)).await.unwrap_err();
        assert!(redirected.contains("302") && redirected.contains("not followed"), "{redirected}");
        let failed = check.run(Duration::from_secs(10)).await.unwrap_err();
        assert!(failed.contains("503"), "{failed}");
        server.join().unwrap();
        target.set_nonblocking(true).unwrap();
        assert!(target.accept().is_err(), "the redirect's target was never asked");
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
