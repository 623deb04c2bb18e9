//! Helpers for running the `ndsr` binary in tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use assert_cmd::cargo::CommandCargoExt;
use zookeeper_client::Client;

pub mod agent;

pub const WAIT: Duration = Duration::from_secs(30);

/// `ndsr --server SERVER ARGS...`
pub fn ndsr(server: &str, args: &[&str]) -> Command {
    let mut cmd = Command::cargo_bin("ndsr").unwrap();
    cmd.arg("--server").arg(server).args(args).env_remove("NDSR_SERVER").env_remove("NDSR_PASSWORD");
    cmd
}

/// Runs to completion: (exit code, stdout, stderr).
pub fn run(server: &str, args: &[&str]) -> (i32, String, String) {
    let out = ndsr(server, args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// A long-running ndsr whose stdout and stderr lines arrive on channels;
/// killed on drop.
pub struct Running {
    pub child: Child,
    pub lines: Receiver<String>,
    pub errors: Receiver<String>,
}

pub fn forward(stream: impl std::io::Read + Send + 'static, echo: bool) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if echo {
                eprintln!("{line}");
            }
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The next item for which `pred` holds (earlier ones are skipped), within `WAIT`.
pub fn next_where<T>(rx: &Receiver<T>, what: &str, pred: impl Fn(&T) -> bool) -> T {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if pred(&line) => return line,
            Ok(_) => continue,
            Err(_) => panic!("nothing with {what} within {WAIT:?}"),
        }
    }
}

impl Running {
    pub fn start(server: &str, args: &[&str]) -> Running {
        let mut child = ndsr(server, args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let lines = forward(child.stdout.take().unwrap(), false);
        let errors = forward(child.stderr.take().unwrap(), true);
        Running { child, lines, errors }
    }

    /// The next stdout line for which `pred` holds (earlier lines are skipped).
    pub fn line_where(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        next_where(&self.lines, what, |line| pred(line))
    }

    /// The next stderr line for which `pred` holds.
    pub fn error_where(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        next_where(&self.errors, what, |line| pred(line))
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    pub fn wait(mut self) -> i32 {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(std::time::Instant::now() < deadline, "ndsr did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

pub fn zk(rt: &tokio::runtime::Runtime, server: &str) -> Client {
    rt.block_on(Client::connect(server)).unwrap()
}

pub fn poll(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
