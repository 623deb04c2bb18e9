//! Case 8: how cost grows. Watching 1,000 / 10,000 / 100,000 paths and
//! registering 1,000 / 10,000 / 50,000 nodes, each size in a process of its
//! own (ndsr only: the point is the shape, not a peer): RSS bytes per path
//! and seconds per 1,000, so that a reader sees whether they are flat.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{fresh, raw, Ctx, Row};
use crate::memory::rss_kb;

/// The child process's side of registering: `ndsr-bench register-child
/// SERVERS BASE N` registers N nodes at once and prints its RSS growth and
/// the time until every `set_node` returned.
pub async fn register_child(servers: &str, base: &str, n: usize) -> Result<(), String> {
    let before = rss_kb();
    let start = Instant::now();
    let registry = ndsr::Registry::builder(servers)
        .operation_timeout(Duration::from_secs(60))
        .connect_timeout(Duration::from_secs(60))
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (registry, path) = (registry.clone(), format!("{base}/n{i:06}"));
        tasks.spawn(async move { registry.set_node(&path, ndsr::Data::None).await });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let after = rss_kb();
    println!("{}", json!({"rss_before_kb": before, "rss_after_kb": after, "setup_seconds": seconds}));
    registry.close().await;
    Ok(())
}

/// Runs `ndsr-bench MODE SERVERS BASE N [FLAGS]` (`memory-child`,
/// `register-child`) and returns the JSON line it prints.
pub async fn child(
    ctx: &Ctx,
    mode: &str,
    base: &str,
    n: usize,
    flags: &[&str],
) -> Result<serde_json::Value, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = tokio::process::Command::new(exe)
        .args([mode, &ctx.servers(), base, &n.to_string()])
        .args(flags)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or(""))
        .map_err(|e| format!("{mode} {n}: {e}: {text}{}", String::from_utf8_lossy(&out.stderr)))
}

pub async fn run(ctx: &Ctx) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    let sizes = |full: [usize; 3], quick: [usize; 3]| if ctx.quick { quick } else { full };
    let own = ctx.size(10_000, 2_000);
    for (mode, what, ns, flags) in [
        ("memory-child", "watch", sizes([1_000, 10_000, 100_000], [500, 2_000, 5_000]).to_vec(), &[][..]),
        ("memory-child", "watch, own watches", vec![own], &["--own-watches"][..]),
        ("register-child", "register", sizes([1_000, 10_000, 50_000], [500, 2_000, 5_000]).to_vec(), &[]),
    ] {
        for n in ns {
            let value = child(ctx, mode, &fresh(&format!("growth-{n}")), n, flags).await?;
            let kb = |k: &str| value[k].as_f64().ok_or(format!("no {k}"));
            let bytes_per = (kb("rss_after_kb")? - kb("rss_before_kb")?) * 1024.0 / n as f64;
            let per_thousand = kb("setup_seconds")? * 1000.0 / n as f64;
            let row = |metric: String, v: f64| {
                Row::compare(
                    "8 growth",
                    &metric,
                    Some(v),
                    "-",
                    None,
                    "linear: flat across sizes",
                    None,
                    String::new(),
                )
            };
            rows.push(row(format!("{what} {n}: RSS growth, bytes per path"), bytes_per));
            rows.push(row(format!("{what} {n}: seconds per 1,000"), per_thousand));
        }
    }
    Ok(rows)
}

/// The floor of case 6's set-up: raw pipelined `getData` + `getChildren`
/// of `n` paths, in the same chunks of 1,000 as ndsr's `get`s.
pub async fn read_floor(ctx: &Ctx, n: usize) -> f64 {
    let client = raw(&ctx.servers()).await;
    let base = fresh("memory-floor");
    let start = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let paths: Vec<String> = chunk.iter().map(|i| format!("{base}/p{i:06}")).collect();
        let reads = paths.iter().map(|p| async { tokio::join!(client.get_data(p), client.list_children(p)) });
        futures::future::join_all(reads).await;
    }
    start.elapsed().as_secs_f64()
}
