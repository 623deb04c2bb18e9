//! Case 7: the Python drop-in (`nd_service_registry` on ndsr, in
//! `.venv-ndsr`) against the Python original (in `.venv`), running the same
//! script (`python/original_bench.py`) on the same server in the same run;
//! and the drop-in's Python callbacks against ndsr's Rust subscriber.

use std::path::PathBuf;

use crate::common::{fresh, populate, raw, Ctx, Row};
use crate::propagation::{measure, rust_observer, service, started, PythonObserver};
use crate::{python, stats};

/// The drop-in's venv python (`--dropin-python`, `NDSR_BENCH_DROPIN_PYTHON`,
/// or `.venv-ndsr` at the workspace root, where scripts/python-tests.sh
/// installs the wheel).
pub fn interpreter(given: Option<PathBuf>) -> Result<PathBuf, String> {
    python::venv_python(
        given,
        "NDSR_BENCH_DROPIN_PYTHON",
        ".venv-ndsr",
        "run scripts/setup.sh and scripts/python-tests.sh to build and install the drop-in",
    )
}

async fn run_script(
    python: &std::path::Path,
    servers: String,
    args: Vec<String>,
) -> Result<serde_json::Value, String> {
    let python = python.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        python::run(&python, &servers, &args)
    })
    .await
    .map_err(|e| e.to_string())?
}

pub async fn run(ctx: &Ctx) -> Result<Vec<Row>, String> {
    let dropin = interpreter(ctx.dropin.clone())?;
    let mut rows = Vec::new();

    // Cached read of a 1,000-child path, alternating rounds.
    let path = fresh("py-cached");
    populate(&raw(&ctx.servers()).await, &path, 1000).await;
    let (rounds, iters) = (ctx.size(5, 3), ctx.size(20_000, 5_000).to_string());
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        for (python, into) in [(&dropin, &mut ours), (&ctx.python, &mut theirs)] {
            let value =
                run_script(python, ctx.servers(), vec!["cached-get".into(), path.clone(), iters.clone()])
                    .await?;
            into.push(value["ns_per_op"].as_f64().ok_or("no ns_per_op")?);
        }
    }
    rows.push(Row::compare(
        "7 python drop-in",
        "get of a 1,000-child watched path, ns/op (median)",
        stats::median(&ours),
        "original",
        stats::median(&theirs),
        "at least 10x faster (ratio <= 0.1)",
        Some(|r| r <= 0.1),
        format!("{rounds} alternating rounds of {iters} gets each, one process per round"),
    ));

    // Registration: N serial set_node calls until all exist.
    let n = ctx.size(10_000, 500).to_string();
    let mut seconds = Vec::new();
    for (python, case) in [(&dropin, "register"), (&ctx.python, "register"), (&ctx.python, "register-raw")] {
        let value =
            run_script(python, ctx.servers(), vec![case.into(), fresh("py-register"), n.clone()]).await?;
        seconds.push(value["seconds"].as_f64().ok_or("no seconds")?);
    }
    rows.push(Row::compare(
        "7 python drop-in",
        &format!("{n} registrations with set_node, s"),
        Some(seconds[0]),
        "original",
        Some(seconds[1]),
        "at least 10x faster (ratio <= 0.1)",
        Some(|r| r <= 0.1),
        "serial set_node calls until a plain client lists them all".into(),
    ));
    rows.push(Row::compare(
        "7 python drop-in",
        &format!("{n} registrations with set_node, s"),
        Some(seconds[0]),
        "raw kazoo creates (floor)",
        Some(seconds[2]),
        "",
        None,
        "a serial call waits for its create's answer: this bounds any serial set_node".into(),
    ));

    // Memory: RSS growth for N watched paths.
    let n = ctx.size(10_000, 1_000).to_string();
    let mut growth = Vec::new();
    let mut setup = Vec::new();
    for python in [&dropin, &ctx.python] {
        let value =
            run_script(python, ctx.servers(), vec!["memory".into(), fresh("py-memory"), n.clone()]).await?;
        let kb = |k: &str| value[k].as_f64().ok_or(format!("no {k}"));
        growth.push((kb("rss_after_kb")? - kb("rss_before_kb")?) / 1024.0);
        setup.push(kb("setup_seconds")?);
    }
    rows.push(Row::compare(
        "7 python drop-in",
        &format!("RSS growth watching {n} paths, MB"),
        Some(growth[0]),
        "original",
        Some(growth[1]),
        "at most half (ratio <= 0.5)",
        Some(|r| r <= 0.5),
        format!("setup {:.1} s (drop-in) vs {:.1} s (original)", setup[0], setup[1]),
    ));

    rows.extend(propagation(ctx, &dropin).await?);
    Ok(rows)
}

/// Send-to-callback time of the drop-in's Python callback against ndsr's
/// Rust subscriber, both watching one service in the same run.
async fn propagation(ctx: &Ctx, dropin: &std::path::Path) -> Result<Vec<Row>, String> {
    let changes = ctx.size(1000, 200);
    let (writer, path) = service(ctx, "py-propagation").await?;
    let (registry, mut rust, rust_task) = rust_observer(ctx, &path).await?;
    let (callback, mut py) = PythonObserver::start(dropin, &ctx.servers(), &path)?;
    started(&mut [&mut py, &mut rust]).await?;
    let (samples, lost) = measure(&writer, &path, changes, &mut [&mut py, &mut rust]).await?;
    let [a, b] = <[Vec<f64>; 2]>::try_from(samples).map_err(|_| "two observers")?;
    // Closing ends the subscription, so the Rust observer returns; stopping
    // the Python process ends its output, so its reader returns.
    registry.close().await;
    rust_task.await.map_err(|e| e.to_string())?;
    callback.stop().await?;
    let note = format!(
        "{changes} changes; samples drop-in {} / Rust {}; lost {} / {}",
        a.len(),
        b.len(),
        lost[0],
        lost[1]
    );
    let q = |v: &Vec<f64>, q: f64| stats::quantile(v, q);
    Ok(vec![
        Row::compare(
            "7 python drop-in",
            "send to Python callback p50, µs",
            q(&a, 0.5),
            "ndsr Rust subscriber",
            q(&b, 0.5),
            "within 1.5x (ratio <= 1.5)",
            Some(|r| r <= 1.5),
            note.clone(),
        ),
        Row::compare(
            "7 python drop-in",
            "send to Python callback p99, µs",
            q(&a, 0.99),
            "ndsr Rust subscriber",
            q(&b, 0.99),
            "within 1.5x (ratio <= 1.5)",
            Some(|r| r <= 1.5),
            note,
        ),
    ])
}
