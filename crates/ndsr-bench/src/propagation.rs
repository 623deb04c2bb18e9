//! Case 2: time from the writer sending a change to each subscriber's
//! delivery, for ndsr, the original's callback and a raw one-shot watch.
//!
//! All three observers watch the same service at once, on their own
//! connections, so they see the same changes in the same run. Times are
//! CLOCK_MONOTONIC in both processes; the write's send time is taken just
//! before the request is sent (ZooKeeper notifies watchers before it
//! answers the writer, so "from the ack" would flatter everyone).

use std::path::Path;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use zookeeper_client::{Acls, Client, CreateMode};

use crate::common::{fresh, mono_ns, raw, Ctx, Row};
use crate::{python, stats};

/// (delivery time, children count) as an observer saw them.
pub(crate) type Seen = mpsc::UnboundedReceiver<(u64, usize)>;

async fn delivered(rx: &mut Seen, sent: u64, expected: usize) -> Option<f64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((t, n))) if n == expected && t >= sent => return Some((t - sent) as f64 / 1000.0),
            Ok(Some(_)) => continue,
            _ => return None,
        }
    }
}

/// A watched service for a propagation case: a fresh path, made empty, and
/// the raw client that will write its changes.
pub(crate) async fn service(ctx: &Ctx, name: &str) -> Result<(Client, String), String> {
    let path = fresh(name);
    let writer = raw(&ctx.servers()).await;
    writer
        .mkdir(&path, &CreateMode::Persistent.with_acls(Acls::anyone_all()))
        .await
        .map_err(|e| e.to_string())?;
    Ok((writer, path))
}

/// ndsr's subscriber on `path`: a registry of its own and a task that
/// forwards each delivery. Closing the registry ends the subscription, and
/// so the task.
pub(crate) async fn rust_observer(
    ctx: &Ctx,
    path: &str,
) -> Result<(ndsr::Registry, Seen, JoinHandle<()>), String> {
    let registry = ndsr::Registry::builder(&ctx.servers()).build().await.map_err(|e| e.to_string())?;
    let mut subscription = registry.subscribe(path).map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Some(s) = subscription.next().await {
            if tx.send((mono_ns(), s.children.len())).is_err() {
                break;
            }
        }
    });
    Ok((registry, rx, task))
}

/// A Python callback on `path` (`original_bench.py subscribe`) under
/// `python`, in its own process, with a thread that forwards its output.
pub(crate) struct PythonObserver {
    process: python::Running,
    reader: std::thread::JoinHandle<()>,
}

impl PythonObserver {
    pub(crate) fn start(python: &Path, servers: &str, path: &str) -> Result<(PythonObserver, Seen), String> {
        let mut process = python::Running::start(&python.to_path_buf(), servers, &["subscribe", path])?;
        let (tx, rx) = mpsc::unbounded_channel();
        let lines = process.take_lines();
        let reader = std::thread::spawn(move || {
            for value in lines {
                let (Some(t), Some(n)) = (value["t_ns"].as_u64(), value["children"].as_u64()) else {
                    continue;
                };
                if tx.send((t, n as usize)).is_err() {
                    break;
                }
            }
        });
        Ok((PythonObserver { process, reader }, rx))
    }

    /// Kills the process (which ends its output) and waits for the reader.
    pub(crate) async fn stop(self) -> Result<(), String> {
        let PythonObserver { process, reader } = self;
        drop(process);
        tokio::task::spawn_blocking(move || reader.join())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|_| "the reader panicked".to_string())
    }
}

/// Waits until each of these observers has delivered the initial (empty)
/// state (a raw one-shot watch delivers nothing before a change: leave it
/// out), then a moment for the last of them to settle.
pub(crate) async fn started(observers: &mut [&mut Seen]) -> Result<(), String> {
    for rx in observers.iter_mut() {
        tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .map_err(|_| "an observer never started")?;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}

/// Creates and deletes a child of `path` `changes` times, waiting after
/// each change for every observer to deliver it. Returns each observer's
/// send-to-delivery times (µs) and how many changes it lost, in the order
/// given.
pub(crate) async fn measure(
    writer: &Client,
    path: &str,
    changes: usize,
    observers: &mut [&mut Seen],
) -> Result<(Vec<Vec<f64>>, Vec<usize>), String> {
    let child = format!("{path}/c");
    let opts = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    let mut samples = vec![Vec::new(); observers.len()];
    let mut lost = vec![0usize; observers.len()];
    for i in 0..changes {
        let expected = usize::from(i % 2 == 0);
        let sent = mono_ns();
        if expected == 1 {
            writer.create(&child, b"", &opts).await.map(drop).map_err(|e| e.to_string())?;
        } else {
            writer.delete(&child, None).await.map_err(|e| e.to_string())?;
        }
        let seen =
            futures::future::join_all(observers.iter_mut().map(|rx| delivered(rx, sent, expected))).await;
        for (k, sample) in seen.into_iter().enumerate() {
            match sample {
                Some(us) => samples[k].push(us),
                None => lost[k] += 1,
            }
        }
    }
    Ok((samples, lost))
}

pub async fn run(ctx: &Ctx) -> Result<Vec<Row>, String> {
    let changes = ctx.size(1000, 200);
    let (writer, path) = service(ctx, "propagation").await?;
    let (registry, mut ours, ndsr_task) = rust_observer(ctx, &path).await?;

    // The floor: a raw one-shot children watch, re-armed after each event.
    let floor_client = raw(&ctx.servers()).await;
    let (tx, mut floor) = mpsc::unbounded_channel();
    let floor_path = path.clone();
    let floor_task = tokio::spawn(async move {
        loop {
            let Ok((_, watcher)) = floor_client.list_and_watch_children(&floor_path).await else { break };
            watcher.changed().await;
            let t = mono_ns();
            let n = floor_client.list_children(&floor_path).await.map(|c| c.len()).unwrap_or(0);
            if tx.send((t, n)).is_err() {
                break;
            }
        }
    });

    // The original's callback, in its own process.
    let (original, mut theirs) = PythonObserver::start(&ctx.python, &ctx.servers(), &path)?;
    started(&mut [&mut ours, &mut theirs]).await?;
    let (samples, lost) = measure(&writer, &path, changes, &mut [&mut ours, &mut theirs, &mut floor]).await?;
    let [a, b, c] = <[Vec<f64>; 3]>::try_from(samples).map_err(|_| "three observers")?;
    // Closing ends ndsr's subscription and so its task; the floor's loop
    // waits on a watch that never fires again, so it is aborted.
    registry.close().await;
    ndsr_task.await.map_err(|e| e.to_string())?;
    floor_task.abort();
    let _ = floor_task.await;
    original.stop().await?;
    let note = format!(
        "{changes} changes; samples ndsr {} / original {} / raw {}; lost {} / {} / {}",
        a.len(),
        b.len(),
        c.len(),
        lost[0],
        lost[1],
        lost[2]
    );
    let q = |v: &Vec<f64>, q: f64| stats::quantile(v, q);
    Ok(vec![
        Row::compare(
            "2 propagation",
            "p50 from send, µs",
            q(&a, 0.5),
            "raw one-shot watch",
            q(&c, 0.5),
            "within 1.5x of the floor (ratio <= 1.5)",
            Some(|r| r <= 1.5),
            note.clone(),
        ),
        Row::compare(
            "2 propagation",
            "p99 from send, µs",
            q(&a, 0.99),
            "original",
            q(&b, 0.99),
            "at least 5x better (ratio <= 0.2)",
            Some(|r| r <= 0.2),
            note.clone(),
        ),
        Row::compare(
            "2 propagation",
            "p50 from send, µs",
            q(&a, 0.5),
            "original",
            q(&b, 0.5),
            "",
            None,
            note.clone(),
        ),
        Row::compare(
            "2 propagation",
            "p99 from send, µs",
            q(&a, 0.99),
            "raw one-shot watch",
            q(&c, 0.99),
            "",
            None,
            note,
        ),
    ])
}
