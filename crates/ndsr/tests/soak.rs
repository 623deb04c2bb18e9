//! The churn soak (issue 14): registrants join and leave at random while
//! every member of a 3-server ensemble is restarted in turn and sessions
//! are forced to expire; after every step, once quiet, every watcher's view
//! must equal the truth read with a plain client (no ghost, no missing
//! member).
//!
//! CI runs the short form (about 60 s). The long form is one command:
//!
//! ```sh
//! NDSR_SOAK_SECONDS=1800 cargo test --release -p ndsr --test soak -- --nocapture
//! ```
//!
//! It prints the counts: changes applied, views checked, mismatches (must
//! be 0) and the longest time to converge.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use ndsr::Registry;
use ndsr_testkit::{expire_session, unique_path, ZkEnsemble};
use serde_json::json;

const REGISTRANTS: usize = 100;
const WATCHERS: usize = 5;
/// How long a step may take to converge before it counts as a mismatch.
const CONVERGE: Duration = Duration::from_secs(60);

/// A small deterministic generator (the run prints its seed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Waits until the truth and every watcher's view equal `desired`; the
/// time it took, or what differed when `CONVERGE` ran out.
async fn converge(
    truth: &zookeeper_client::Client,
    watchers: &[Registry],
    dir: &str,
    desired: &BTreeSet<String>,
) -> Result<Duration, String> {
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < CONVERGE {
        let mut actual: BTreeSet<String> = match truth.list_children(dir).await {
            Ok(children) => children.into_iter().collect(),
            Err(e) => {
                last = format!("truth unreadable: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        actual.retain(|c| c.starts_with('r'));
        if &actual != desired {
            let ghosts: Vec<_> = actual.difference(desired).collect();
            let missing: Vec<_> = desired.difference(&actual).collect();
            last = format!("truth: ghosts {ghosts:?}, missing {missing:?}");
        } else {
            let views: Vec<_> = watchers
                .iter()
                .map(|w| {
                    w.get_cached(dir)
                        .ok()
                        .flatten()
                        .map(|s| s.children.iter().cloned().collect::<BTreeSet<_>>())
                })
                .collect();
            match views.iter().position(|v| v.as_ref() != Some(&actual)) {
                None => return Ok(started.elapsed()),
                Some(i) => last = format!("watcher {i} sees {:?}", views[i].as_ref().map(|v| v.len())),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_under_rolling_restarts_and_expiries_leaves_no_ghost_and_no_missing_member() {
    let seconds: u64 = std::env::var("NDSR_SOAK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(45);
    let seed = std::env::var("NDSR_SOAK_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
            | 1
    });
    let mut rng = Rng(seed);
    let ensemble = std::sync::Arc::new(tokio::task::spawn_blocking(ZkEnsemble::new).await.unwrap().unwrap());
    let servers = ensemble.connect_string();
    let dir = unique_path("soak");
    let mut registrants = Vec::new();
    for _ in 0..REGISTRANTS {
        registrants.push(registry(&servers).await);
    }
    let mut watchers = Vec::new();
    for _ in 0..WATCHERS {
        let watcher = registry(&servers).await;
        watcher.get(&dir).await.unwrap();
        watchers.push(watcher);
    }
    let truth = other(&servers).await;
    let mut desired = BTreeSet::new();
    let (mut changes, mut checks, mut mismatches, mut restarts, mut expiries) =
        (0usize, 0usize, 0usize, 0usize, 0usize);
    let mut slowest = Duration::ZERO;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut step = 0usize;
    while Instant::now() < deadline {
        step += 1;
        // Ten registrants join or leave.
        for _ in 0..10 {
            let i = rng.below(REGISTRANTS);
            let name = format!("r{i:03}");
            let path = format!("{dir}/{name}");
            if desired.contains(&name) {
                let _ = registrants[i].unset(&path).await;
                desired.remove(&name);
            } else {
                let _ = registrants[i].set_node(&path, json!({"step": step})).await;
                desired.insert(name);
            }
            changes += 1;
        }
        // Every third step, the next member restarts; twice a run, a
        // registered registrant's session is expired.
        if step.is_multiple_of(3) {
            let member = restarts % ZkEnsemble::SIZE;
            let ensemble = ensemble.clone();
            tokio::task::spawn_blocking(move || ensemble.member(member).restart()).await.unwrap().unwrap();
            restarts += 1;
        }
        if step.is_multiple_of(7) && expiries < 2 {
            let registered: Vec<usize> =
                desired.iter().filter_map(|n| n[1..].parse::<usize>().ok()).collect();
            if !registered.is_empty() {
                let i = registered[rng.below(registered.len())];
                if let Some(session) = registrants[i].session() {
                    if expire_session(&servers, &session).await.is_ok() {
                        expiries += 1;
                    }
                }
            }
        }
        match converge(&truth, &watchers, &dir, &desired).await {
            Ok(took) => slowest = slowest.max(took),
            Err(what) => {
                mismatches += 1;
                eprintln!("soak: step {step} did not converge within {CONVERGE:?}: {what}");
            }
        }
        checks += WATCHERS;
    }
    println!(
        "soak (seed {seed}, {seconds} s): {step} steps, {changes} changes applied, {restarts} member restarts, \
         {expiries} forced expiries, {checks} views checked, {mismatches} mismatches, slowest convergence {slowest:?}"
    );
    for r in registrants.iter().chain(&watchers) {
        r.close().await;
    }
    assert_eq!(mismatches, 0, "every view equals the truth once quiet (seed {seed})");
    assert!(expiries >= 1 || seconds < 20, "the run forced an expiry");
}
