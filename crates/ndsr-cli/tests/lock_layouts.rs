//! `ndsr lock --layout kazoo|curator --mode ...` (issue 26): the command
//! runs under a lock that kazoo's `Lock` and `WriteLock` on the same path
//! respect, and that respects theirs; another layout's path is refused.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::*;
use ndsr_testkit::{unique_path, ZkServer};

/// The venv `scripts/setup.sh` makes with kazoo.
fn python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(python.exists(), "kazoo is not installed: run scripts/setup.sh (it makes .venv)");
    python
}

/// kazoo's `KIND` lock: `try` prints `acquired` or `busy` and exits;
/// `hold` acquires (60 s at most), prints `acquired`, and holds until its
/// stdin closes.
const KAZOO: &str = r#"
import sys
from kazoo.client import KazooClient
hosts, path, kind, how = sys.argv[1:5]
zk = KazooClient(hosts=hosts); zk.start()
lock = {"lock": zk.Lock, "read": zk.ReadLock, "write": zk.WriteLock}[kind](path, "kazoo")
got = lock.acquire(blocking=False) if how == "try" else lock.acquire(timeout=60)
print("acquired" if got else "busy", flush=True)
if got and how == "hold":
    sys.stdin.read()
if got:
    lock.release()
zk.stop()
"#;

fn kazoo_try(server: &str, path: &str, kind: &str) -> String {
    let out = Command::new(python()).args(["-c", KAZOO, server, path, kind, "try"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn lock_in_kazoo_s_layout_excludes_kazoo_s_lock_both_ways() {
    let server = ZkServer::shared().connect_string();
    let path = unique_path("cli-lock-kazoo");
    let dir = tempfile::tempdir().unwrap();
    let (inside, release) = (dir.path().join("inside"), dir.path().join("release"));
    let script = format!(
        "touch {0}; while [ ! -e {1} ]; do sleep 0.05; done; exit 5",
        inside.display(),
        release.display()
    );
    let holder = Running::start(&server, &["lock", &path, "--layout", "kazoo", "--", "sh", "-c", &script]);
    poll("the command runs under the lock", || inside.exists());
    assert_eq!(kazoo_try(&server, &path, "lock"), "busy", "kazoo's Lock waits for ndsr's");
    assert_eq!(kazoo_try(&server, &path, "read"), "busy", "kazoo's ReadLock waits for ndsr's exclusive lock");
    let (code, _, err) = run(&server, &["lock", &path, "--layout", "curator", "--wait", "0s", "--", "true"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("holds kazoo") && err.contains("curator"), "{err}");
    let (code, _, err) = run(&server, &["lock", &path, "--wait", "0s", "--", "true"]);
    assert_eq!(code, 3, "the semaphore layout refuses it too: {err}");
    std::fs::write(&release, b"").unwrap();
    assert_eq!(holder.wait(), 5, "the command's own exit code");

    // kazoo's writer holds: ndsr's reader waits.
    let mut kazoo = Command::new(python())
        .args(["-c", KAZOO, &server, &path, "write", "hold"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = forward(kazoo.stdout.take().unwrap(), false);
    next_where(&lines, "kazoo holds its WriteLock", |l| l == "acquired");
    let args = ["lock", &path, "--layout", "kazoo", "--mode", "read", "--wait", "0s", "--", "true"];
    let (code, _, err) = run(&server, &args);
    assert_eq!(code, 7, "lock timeout: {err}");
    drop(kazoo.stdin.take());
    assert!(kazoo.wait().unwrap().success());
    let (code, _, err) = run(&server, &args);
    assert_eq!(code, 0, "free once kazoo released: {err}");

    let (code, _, err) = run(&server, &["lock", &path, "--mode", "read", "--", "true"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("kazoo or curator layout"), "{err}");
}
