//! Case 2: time from the writer sending a change to each subscriber's
//! delivery, for ndsr, the original's callback and a raw one-shot watch.
//!
//! All three observers watch the same service at once, on their own
//! connections, so they see the same changes in the same run. Times are
//! CLOCK_MONOTONIC in both processes; the write's send time is taken just
//! before the request is sent (ZooKeeper notifies watchers before it
//! answers the writer, so "from the ack" would flatter everyone).

use std::time::Duration;

use tokio::sync::mpsc;
use zookeeper_client::{Acls, CreateMode};

use crate::common::{fresh, mono_ns, raw, Ctx, Row};
use crate::{python, stats};

/// (delivery time, children count) as an observer saw them.
pub(crate) type Seen = mpsc::UnboundedReceiver<(u64, usize)>;

pub(crate) async fn delivered(rx: &mut Seen, sent: u64, expected: usize) -> Option<f64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((t, n))) if n == expected && t >= sent => return Some((t - sent) as f64 / 1000.0),
            Ok(Some(_)) => continue,
            _ => return None,
        }
    }
}

pub async fn run(ctx: &Ctx) -> Result<Vec<Row>, String> {
    let changes = ctx.size(1000, 200);
    let path = fresh("propagation");
    let writer = raw(&ctx.servers()).await;
    writer
        .mkdir(&path, &CreateMode::Persistent.with_acls(Acls::anyone_all()))
        .await
        .map_err(|e| e.to_string())?;

    // ndsr's subscriber.
    let registry = ndsr::Registry::builder(&ctx.servers()).build().await.map_err(|e| e.to_string())?;
    let mut subscription = registry.subscribe(&path).map_err(|e| e.to_string())?;
    let (tx, mut ours) = mpsc::unbounded_channel();
    let ndsr_task = tokio::spawn(async move {
        while let Some(s) = subscription.next().await {
            if tx.send((mono_ns(), s.children.len())).is_err() {
                break;
            }
        }
    });

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
    let mut original = python::Running::start(&ctx.python, &ctx.servers(), &["subscribe", &path])?;
    let (tx, mut theirs) = mpsc::unbounded_channel();
    let lines = original.take_lines();
    let _python_reader = std::thread::spawn(move || {
        for value in lines {
            let (Some(t), Some(n)) = (value["t_ns"].as_u64(), value["children"].as_u64()) else { continue };
            if tx.send((t, n as usize)).is_err() {
                break;
            }
        }
    });
    // Everyone has delivered the initial (empty) state before we start.
    for rx in [&mut ours, &mut theirs] {
        tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .map_err(|_| "an observer never started")?;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let child = format!("{path}/c");
    let opts = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    let mut lost = [0usize; 3];
    for i in 0..changes {
        let expected = if i % 2 == 0 { 1 } else { 0 };
        let sent = mono_ns();
        let write = if expected == 1 {
            futures::future::Either::Left(async { writer.create(&child, b"", &opts).await.map(drop) })
        } else {
            futures::future::Either::Right(writer.delete(&child, None))
        };
        write.await.map_err(|e| e.to_string())?;
        let (x, y, z) = tokio::join!(
            delivered(&mut ours, sent, expected),
            delivered(&mut theirs, sent, expected),
            delivered(&mut floor, sent, expected)
        );
        for (k, (sample, into)) in [(x, &mut a), (y, &mut b), (z, &mut c)].into_iter().enumerate() {
            match sample {
                Some(us) => into.push(us),
                None => lost[k] += 1,
            }
        }
    }
    ndsr_task.abort();
    floor_task.abort();
    registry.close().await;
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
