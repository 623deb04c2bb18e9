//! Case 1: `get` of a watched service with 1,000 children, from memory.

use std::time::Instant;

use crate::common::{fresh, populate, raw, Ctx, Row};
use crate::{python, stats};

pub async fn run(ctx: &Ctx) -> Result<Vec<Row>, String> {
    let children = 1000;
    let rounds = ctx.size(7, 3);
    let iters = ctx.size(20_000, 5_000);
    let path = fresh("cached");
    populate(&raw(&ctx.servers()).await, &path, children).await;
    let registry = ndsr::Registry::builder(&ctx.servers()).build().await.map_err(|e| e.to_string())?;
    assert_eq!(registry.get(&path).await.map_err(|e| e.to_string())?.children.len(), children);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let start = Instant::now();
        for _ in 0..iters {
            let snapshot = registry.get(&path).await.map_err(|e| e.to_string())?;
            std::hint::black_box(snapshot);
        }
        ours.push(start.elapsed().as_nanos() as f64 / iters as f64);
        let python = ctx.python.clone();
        let (servers, p, n) = (ctx.servers(), path.clone(), iters.to_string());
        let value =
            tokio::task::spawn_blocking(move || python::run(&python, &servers, &["cached-get", &p, &n]))
                .await
                .map_err(|e| e.to_string())??;
        theirs.push(value["ns_per_op"].as_f64().ok_or("no ns_per_op")?);
    }
    registry.close().await;
    Ok(vec![Row::compare(
        "1 cached read",
        "get of a 1,000-child watched path, ns/op (median of rounds)",
        stats::median(&ours),
        "original",
        stats::median(&theirs),
        "at least 50x faster (ratio <= 0.02)",
        Some(|r| r <= 0.02),
        format!("{rounds} alternating rounds of {iters} gets each"),
    )])
}
