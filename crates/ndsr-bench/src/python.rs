//! Driving the Python original through `python/original_bench.py`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};

use serde_json::Value;

/// The venv's python (`--python`, `NDSR_BENCH_PYTHON`, or `.venv` at the
/// workspace root as `scripts/setup.sh` makes it).
pub fn interpreter(given: Option<PathBuf>) -> Result<PathBuf, String> {
    venv_python(given, "NDSR_BENCH_PYTHON", ".venv", "run scripts/setup.sh to install the Python original")
}

/// The python of a venv: `given`, else `$env_var`, else `venv` at the
/// workspace root; an error naming `hint` if it is not there.
pub fn venv_python(given: Option<PathBuf>, env_var: &str, venv: &str, hint: &str) -> Result<PathBuf, String> {
    let path = given.or_else(|| std::env::var_os(env_var).map(PathBuf::from)).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(venv).join("bin/python")
    });
    if path.exists() {
        Ok(path)
    } else {
        Err(format!("{} not found: {hint}", path.display()))
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/original_bench.py")
}

/// Runs a case to completion and returns its last JSON line.
pub fn run(python: &PathBuf, server: &str, args: &[&str]) -> Result<Value, String> {
    let out = Command::new(python)
        .arg(script())
        .arg(server)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!("original_bench.py {args:?} failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().ok_or("original_bench.py printed nothing")?;
    serde_json::from_str(last).map_err(|e| format!("bad output {last:?}: {e}"))
}

/// A long-running case whose JSON lines arrive on a channel; stopped on drop.
pub struct Running {
    child: Child,
    /// Parsed output lines.
    pub lines: Receiver<Value>,
}

impl Running {
    /// Starts a case.
    pub fn start(python: &PathBuf, server: &str, args: &[&str]) -> Result<Running, String> {
        let mut child = Command::new(python)
            .arg(script())
            .arg(server)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("running {}: {e}", python.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str(&line) {
                    if tx.send(value).is_err() {
                        break;
                    }
                }
            }
        });
        Ok(Running { child, lines })
    }
}

impl Running {
    /// Takes the output channel (for a reader thread); the process stays
    /// owned by `self`.
    pub fn take_lines(&mut self) -> Receiver<Value> {
        std::mem::replace(&mut self.lines, channel().1)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
