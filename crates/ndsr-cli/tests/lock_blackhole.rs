//! Issue 22, defect 3: `ndsr lock` never lets two processes hold a
//! one-holder lock, even when its link to ZooKeeper is blackholed (packets
//! dropped, not refused). A kazoo `Semaphore` on a healthy link is the
//! contender (kazoo's layout is the one `ndsr lock` uses); the command
//! under `ndsr lock` writes a heartbeat, the external observer of when it
//! really ran. Before the fix the command kept running for seconds after
//! kazoo held the lock.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use ndsr_testkit::{unique_path, FaultProxy, ZkServer};

/// The venv `scripts/setup.sh` makes with the Python original and kazoo.
fn python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(python.exists(), "kazoo is not installed: run scripts/setup.sh (it makes .venv)");
    python
}

const CONTENDER: &str = r#"
import sys, time
from kazoo.client import KazooClient
zk = KazooClient(hosts=sys.argv[1], timeout=10)
zk.start(timeout=20)
sem = zk.Semaphore(sys.argv[2], identifier="kazoo", max_leases=1)
print("waiting", flush=True)
if not sem.acquire(timeout=60):
    print("timeout", flush=True)
    sys.exit(1)
print("acquired %d" % time.time_ns(), flush=True)
sem.release()
zk.stop()
"#;

/// The heartbeat's last value: nanoseconds since the epoch.
fn heartbeat(file: &Path) -> Option<u128> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

#[test]
fn a_blackholed_lock_holder_stops_its_command_before_kazoo_can_take_the_lock() {
    // The command ignores SIGTERM: only the SIGKILL that `ndsr lock` sends
    // before the session can expire stops it, although --grace is long.
    never_two_holders(|beat| {
        format!(
            "trap '' TERM; while :; do date +%s%N > {0}.tmp && mv {0}.tmp {0}; sleep 0.05; done",
            beat.display()
        )
    });
}

/// The command ends on SIGTERM but leaves a process behind in its group
/// that ignores it: that one is stopped too, before the session can expire
/// (review of issue 22: the group was signalled through the reaped
/// command's pid, which no longer named it).
#[test]
fn what_a_blackholed_lock_holders_command_left_behind_stops_too() {
    never_two_holders(|beat| {
        format!(
            "(trap '' TERM; while :; do date +%s%N > {0}.tmp && mv {0}.tmp {0}; sleep 0.05; done) & wait",
            beat.display()
        )
    });
}

fn never_two_holders(script: impl Fn(&Path) -> String) {
    let server = ZkServer::new().unwrap();
    let proxy = FaultProxy::start(&server.connect_string()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let beat = dir.path().join("beat");
    let path = unique_path("cli-lock-blackhole");
    let script = script(&beat);
    let holder = Running::start(
        &proxy.connect_string(),
        &["--session-timeout", "4s", "lock", &path, "--grace", "60s", "--", "sh", "-c", &script],
    );
    poll("the command runs under the lock", || heartbeat(&beat).is_some());

    let mut kazoo = Command::new(python())
        .args(["-c", CONTENDER, &server.connect_string(), &path])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = kazoo.stdout.take().unwrap();
    let lines = forward(out, true);
    next_where(&lines, "kazoo waiting", |l: &String| l == "waiting");

    proxy.blackhole();
    let acquired = next_where(&lines, "kazoo acquired the lock", |l: &String| l.starts_with("acquired"));
    let acquired: u128 = acquired.trim_start_matches("acquired ").parse().unwrap();
    let stderr = holder.error_where("ndsr says the lock is lost", |l| l.contains("lost"));
    assert!(stderr.contains("did not answer"), "{stderr}");
    let code = holder.wait();
    assert_eq!(code, 8, "exit 8: the lock was lost");
    let last = heartbeat(&beat).unwrap();
    assert!(
        last < acquired,
        "the command ran until {last} ns, after kazoo held the lock at {acquired} ns: two holders"
    );
    assert!(kazoo.wait().unwrap().success());
}

/// A command that exits at once but leaves a background job running: the
/// job is ended before the lock is released, so nothing of the command
/// runs unguarded (review of issue 22).
#[test]
fn what_a_command_leaves_running_ends_before_the_lock_is_released() {
    let server = ZkServer::shared();
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let path = unique_path("cli-lock-leftovers");
    let script = format!(
        "sh -c 'trap \"\" TERM; echo $$ > {0}.tmp && mv {0}.tmp {0}; while :; do sleep 0.05; done' >/dev/null 2>&1 & \
         while [ ! -s {0} ]; do sleep 0.01; done",
        pid_file.display()
    );
    let (code, _, err) = run(&server.connect_string(), &["lock", &path, "--", "sh", "-c", &script]);
    assert_eq!(code, 0, "{err}");
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    let job = nix::unistd::Pid::from_raw(pid);
    let alive = nix::sys::signal::kill(job, None).is_ok();
    if alive {
        let _ = nix::sys::signal::kill(job, nix::sys::signal::Signal::SIGKILL);
    }
    assert!(!alive, "the background job {pid} still ran after the lock was released");
}
