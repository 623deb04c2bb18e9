//! Case 6: resident memory of a process watching 10,000 paths. Each peer
//! runs in a process of its own and reads its own VmRSS before and after.

use std::time::Instant;

use serde_json::json;

use crate::common::{fresh, Ctx, Row};
use crate::python;

/// The process's resident set, in kB.
pub fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The child process's side: `ndsr-bench memory-child SERVERS BASE N
/// [--own-watches]` (`own_watches`: sharing the parent's watch turned off).
pub async fn child(servers: &str, base: &str, n: usize, own_watches: bool) -> Result<(), String> {
    let before = rss_kb();
    let start = Instant::now();
    let mut builder = ndsr::Registry::builder(servers);
    if own_watches {
        builder = builder.share_parent_watch_at(usize::MAX);
    }
    let registry = builder.build().await.map_err(|e| e.to_string())?;
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let gets: Vec<_> = chunk.iter().map(|i| (registry.clone(), format!("{base}/p{i:06}"))).collect();
        let gets = gets.iter().map(|(r, p)| r.get(p));
        for got in futures::future::join_all(gets).await {
            got.map_err(|e| e.to_string())?;
        }
    }
    let after = rss_kb();
    println!(
        "{}",
        json!({"rss_before_kb": before, "rss_after_kb": after, "setup_seconds": start.elapsed().as_secs_f64()})
    );
    registry.close().await;
    Ok(())
}

pub async fn run(ctx: &Ctx) -> Result<Vec<Row>, String> {
    let n = ctx.size(10_000, 1_000);
    let ours = crate::growth::child(ctx, "memory-child", &fresh("memory-ndsr"), n, &[]).await?;
    let (python, servers, base, count) =
        (ctx.python.clone(), ctx.servers(), fresh("memory-py"), n.to_string());
    let theirs =
        tokio::task::spawn_blocking(move || python::run(&python, &servers, &["memory", &base, &count]))
            .await
            .map_err(|e| e.to_string())??;
    let mb = |v: &serde_json::Value, k: &str| v[k].as_f64().map(|kb| kb / 1024.0);
    let delta = |v: &serde_json::Value| Some(mb(v, "rss_after_kb")? - mb(v, "rss_before_kb")?);
    let note = format!(
        "{n} watched paths; setup {:.1} s (ndsr) vs {:.1} s (original)",
        ours["setup_seconds"].as_f64().unwrap_or(f64::NAN),
        theirs["setup_seconds"].as_f64().unwrap_or(f64::NAN)
    );
    let ours_setup = ours["setup_seconds"].as_f64();
    let floor = crate::growth::read_floor(ctx, n).await;
    Ok(vec![
        Row::compare(
            "6 memory",
            &format!("set-up of {n} watched paths, s"),
            ours_setup,
            "raw pipelined getData+getChildren",
            Some(floor),
            "within 1.5x of the floor (ratio <= 1.5)",
            Some(|r| r <= 1.5),
            "the same paths (all missing), in chunks of 1,000; ndsr also watches them (one shared watch on their parent)"
                .into(),
        ),
        Row::compare(
            "6 memory",
            "RSS growth while watching, MB",
            delta(&ours),
            "original",
            delta(&theirs),
            "at most a tenth (ratio <= 0.1)",
            Some(|r| r <= 0.1),
            note.clone(),
        ),
        Row::compare(
            "6 memory",
            "total RSS, MB",
            mb(&ours, "rss_after_kb"),
            "original",
            mb(&theirs, "rss_after_kb"),
            "",
            None,
            note,
        ),
    ])
}
