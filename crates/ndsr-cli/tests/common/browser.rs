//! A headless browser for the dashboard's tests (Debian's chromium and
//! chromium-driver, which `scripts/setup.sh` installs), driven over
//! WebDriver with fantoccini. Included by the dashboard test files with
//! `#[path]` (only they link the browser code).
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::WAIT;
use fantoccini::{Client, ClientBuilder, Locator};

/// chromedriver on a free port, in a process group of its own with the
/// browsers it starts: the whole group is killed on drop, so a failing
/// test leaves no browser behind.
pub struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    pub fn start() -> Driver {
        let driver = std::env::var("NDSR_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        assert!(
            std::path::Path::new(&driver).exists(),
            "{driver} is missing: run scripts/setup.sh (it installs chromium and chromium-driver), \
             or set NDSR_CHROMEDRIVER"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        use std::os::unix::process::CommandExt;
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver { child, url: format!("http://127.0.0.1:{port}") }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

pub async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    let binary = std::env::var("NDSR_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let args = [
        "--headless=new".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-dev-shm-usage".into(),
        "--window-size=1400,1000".into(),
        format!("--user-data-dir={}", profile.display()),
    ];
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), serde_json::json!({"binary": binary, "args": args}));
    ClientBuilder::rustls().unwrap().capabilities(caps).connect(&driver.url).await.expect("a browser session")
}

/// The text of the element at `css` once it holds `needle` (waited for
/// within `WAIT`; the page re-renders, so the element is found afresh).
pub async fn text_with(client: &Client, css: &str, needle: &str) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let shown = match client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if shown.contains(needle) {
            return shown;
        }
        assert!(std::time::Instant::now() < deadline, "no {needle:?} in {css}: {shown:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn screenshot(client: &Client, dir: &std::path::Path, name: &str) {
    let png = client.screenshot().await.unwrap();
    let path = dir.join(name);
    std::fs::write(&path, png).unwrap();
    println!("screenshot: {}", path.display());
}
