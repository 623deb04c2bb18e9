//! Case 3: what one member joining or leaving a 10,000-member service costs
//! a watcher: ZooKeeper requests and bytes, counted by a `FaultProxy` in
//! front of each peer (and by ndsr's own request counter).

use std::time::Duration;

use ndsr_testkit::FaultProxy;
use zookeeper_client::{Acls, CreateMode};

use crate::common::{fresh, populate, raw, Ctx, Row};
use crate::{python, stats};

/// Waits until the proxy's counters have not moved for `quiet`.
async fn settle(proxies: &[&FaultProxy], quiet: Duration) {
    let total = || proxies.iter().map(|p| p.bytes_to_client() + p.bytes_to_server()).sum::<u64>();
    let mut last = total();
    loop {
        tokio::time::sleep(quiet).await;
        let now = total();
        if now == last {
            return;
        }
        last = now;
    }
}

pub async fn run(ctx: &Ctx) -> Result<Vec<Row>, String> {
    let members = ctx.size(10_000, 2_000);
    let changes = ctx.size(20, 6);
    let path = fresh("fanout");
    let writer = raw(&ctx.servers()).await;
    populate(&writer, &path, members).await;

    let ours_proxy = FaultProxy::start(&ctx.servers()).map_err(|e| e.to_string())?;
    let theirs_proxy = FaultProxy::start(&ctx.servers()).map_err(|e| e.to_string())?;
    let registry =
        ndsr::Registry::builder(&ours_proxy.connect_string()).build().await.map_err(|e| e.to_string())?;
    let mut subscription = registry.subscribe(&path).map_err(|e| e.to_string())?;
    subscription.next().await.ok_or("no first snapshot")?;
    let original =
        python::Running::start(&ctx.python, &theirs_proxy.connect_string(), &["subscribe", &path])?;
    original.lines.recv_timeout(Duration::from_secs(60)).map_err(|_| "the original never started")?;
    settle(&[&ours_proxy, &theirs_proxy], Duration::from_millis(300)).await;

    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let extra = format!("{path}/extra");
    let (mut our_bytes, mut their_bytes, mut our_requests, mut our_sent, mut their_sent) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..changes {
        let before = (ours_proxy.bytes_to_client(), theirs_proxy.bytes_to_client());
        let sent_before = (ours_proxy.bytes_to_server(), theirs_proxy.bytes_to_server());
        let requests = registry.zk_requests();
        let expected = if i % 2 == 0 { members + 1 } else { members };
        if i % 2 == 0 {
            writer.create(&extra, b"", &opts).await.map_err(|e| e.to_string())?;
        } else {
            writer.delete(&extra, None).await.map_err(|e| e.to_string())?;
        }
        // Both have delivered the new member list...
        loop {
            let s = tokio::time::timeout(Duration::from_secs(30), subscription.next())
                .await
                .map_err(|_| "ndsr missed a change")?
                .ok_or("subscription ended")?;
            if s.children.len() == expected {
                break;
            }
        }
        loop {
            let v = original
                .lines
                .recv_timeout(Duration::from_secs(30))
                .map_err(|_| "the original missed a change")?;
            if v["children"].as_u64() == Some(expected as u64) {
                break;
            }
        }
        // ...and whatever they read after it has arrived.
        settle(&[&ours_proxy, &theirs_proxy], Duration::from_millis(200)).await;
        our_bytes.push((ours_proxy.bytes_to_client() - before.0) as f64);
        their_bytes.push((theirs_proxy.bytes_to_client() - before.1) as f64);
        our_sent.push((ours_proxy.bytes_to_server() - sent_before.0) as f64);
        their_sent.push((theirs_proxy.bytes_to_server() - sent_before.1) as f64);
        our_requests.push((registry.zk_requests() - requests) as f64);
    }
    registry.close().await;
    let note = format!("{changes} changes to a {members}-member service; medians per change");
    let m = stats::median;
    Ok(vec![
        Row::compare(
            "3 fan-out",
            "bytes received per change",
            m(&our_bytes),
            "original",
            m(&their_bytes),
            "at least 100x fewer (ratio <= 0.01)",
            Some(|r| r <= 0.01),
            note.clone(),
        ),
        Row::compare(
            "3 fan-out",
            "bytes sent per change",
            m(&our_sent),
            "original",
            m(&their_sent),
            "",
            None,
            note.clone(),
        ),
        Row {
            met: m(&our_requests).map(|r| r <= 1.0),
            ..Row::compare(
                "3 fan-out",
                "ZooKeeper requests per change (ndsr's counter)",
                m(&our_requests),
                "-",
                None,
                "O(1): at most 1",
                None,
                note,
            )
        },
    ])
}
