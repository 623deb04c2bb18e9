//! `ndsr-bench`: ndsr against the Python original and the raw ZooKeeper
//! client, in one run, on one ZooKeeper server it starts itself.
//!
//! ```sh
//! cargo run --release -p ndsr-bench            # full sizes (a few minutes)
//! cargo run --release -p ndsr-bench -- --quick # a smoke run
//! cargo run --release -p ndsr-bench -- --json  # for machines
//! ```
//!
//! See docs/BENCHMARKS.md for the method and the latest figures.

mod agent;
mod cached;
mod common;
mod config;
mod discovery;
mod dns;
mod dropin;
mod failover;
mod fanout;
mod growth;
mod memory;
mod propagation;
mod python;
mod registration;
mod stats;
mod tree;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use ndsr_testkit::{four_letter_word, ZkServer};

use crate::common::{Ctx, Row};

/// Benchmarks ndsr against the Python original (nd_service_registry 1.1.0)
/// and the raw zookeeper-client, in one run.
#[derive(Debug, Parser)]
#[command(name = "ndsr-bench")]
struct Args {
    /// Smaller sizes: a smoke run of well under a minute.
    #[arg(long)]
    quick: bool,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Run only these cases (1-14, comma separated).
    #[arg(long, value_delimiter = ',')]
    cases: Vec<u8>,
    /// The venv python with nd-service-registry installed (default: .venv).
    #[arg(long)]
    python: Option<PathBuf>,
    /// The venv python with the ndsr wheel (the drop-in) installed, for
    /// case 7 (default: .venv-ndsr).
    #[arg(long)]
    dropin_python: Option<PathBuf>,
    #[command(subcommand)]
    internal: Option<Internal>,
}

#[derive(Debug, Subcommand)]
enum Internal {
    /// (internal) The ndsr side of the memory case, in a process of its own.
    #[command(hide = true)]
    MemoryChild {
        servers: String,
        base: String,
        n: usize,
        /// Every path its own watch (no shared parent watch), for case 8.
        #[arg(long)]
        own_watches: bool,
    },
    /// (internal) Registering N nodes, in a process of its own (case 8).
    #[command(hide = true)]
    RegisterChild { servers: String, base: String, n: usize },
    /// (internal) An ndsr contender of case 13, in a process of its own.
    #[command(hide = true)]
    ElectionContender { servers: String, path: String, id: String, session_ms: u64 },
}

fn main() {
    let args = Args::parse();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    if let Some(internal) = &args.internal {
        let done = match internal {
            Internal::MemoryChild { servers, base, n, own_watches } => {
                runtime.block_on(memory::child(servers, base, *n, *own_watches))
            }
            Internal::RegisterChild { servers, base, n } => {
                runtime.block_on(growth::register_child(servers, base, *n))
            }
            Internal::ElectionContender { servers, path, id, session_ms } => {
                runtime.block_on(failover::child(servers, path, id, *session_ms))
            }
        };
        if let Err(e) = done {
            eprintln!("ndsr-bench (child): {e}");
            std::process::exit(1);
        }
        return;
    }
    if let Err(e) = runtime.block_on(run(args)) {
        eprintln!("ndsr-bench: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), String> {
    let python = python::interpreter(args.python.clone())?;
    // The server's full JIT (not the test kit's quick-start flags): the
    // same server serves every peer.
    let server =
        tokio::task::spawn_blocking(|| ZkServer::builder().jvm_args(["-Xmx1g", "-XX:+UseSerialGC"]).start())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    let version = four_letter_word(&server.connect_string(), "srvr")
        .ok()
        .and_then(|s| s.lines().next().map(|l| l.trim_start_matches("Zookeeper version: ").to_string()))
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let wanted = |case: u8| args.cases.is_empty() || args.cases.contains(&case);
    // Case 7 looks for the drop-in when it runs: without it, that case
    // fails with a message and the others still run.
    let ctx = Ctx { server, python, dropin: args.dropin_python.clone(), quick: args.quick };
    if !args.json {
        println!("ndsr-bench{}: ZooKeeper {version}; {cores} cores; peers: nd_service_registry 1.1.0 (Python, kazoo), raw zookeeper-client, zk-shell 1.3.4, dnsmasq", if args.quick { " --quick" } else { "" });
    }
    let mut rows: Vec<Row> = Vec::new();
    let mut failures = Vec::new();
    for case in 1..=14u8 {
        if !wanted(case) {
            continue;
        }
        if !args.json {
            eprintln!("ndsr-bench: running case {case}...");
        }
        let result = match case {
            1 => cached::run(&ctx).await,
            2 => propagation::run(&ctx).await,
            3 => fanout::run(&ctx).await,
            4 => registration::registration(&ctx).await,
            5 => registration::recovery(&ctx).await,
            6 => memory::run(&ctx).await,
            7 => dropin::run(&ctx).await,
            8 => growth::run(&ctx).await,
            9 => discovery::run(&ctx).await,
            10 => agent::run(&ctx).await,
            11 => config::run(&ctx).await,
            12 => tree::run(&ctx).await,
            13 => failover::run(&ctx).await,
            _ => dns::run(&ctx).await,
        };
        match result {
            Ok(r) => rows.extend(r),
            Err(e) => failures.push(format!("case {case}: {e}")),
        }
    }
    if args.json {
        let doc = serde_json::json!({
            "zookeeper": version, "cores": cores, "quick": args.quick, "rows": rows, "failures": failures,
        });
        println!("{}", serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?);
    } else {
        print_table(&rows);
        for f in &failures {
            println!("FAILED {f}");
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("{} case(s) failed", failures.len()))
    }
}

fn fmt(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 1.0 => format!("{v:.2}"),
        Some(v) => format!("{v:.4}"),
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<15} {:<50} {:>10} {:<22} {:>10} {:>8}  {:<4} target",
        "case", "metric", "ndsr", "peer", "peer", "ratio", "met"
    );
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        println!(
            "{:<15} {:<50} {:>10} {:<22} {:>10} {:>8}  {:<4} {}",
            r.case,
            r.metric,
            fmt(r.ndsr),
            r.peer,
            fmt(r.peer_value),
            fmt(r.ratio),
            met,
            r.target
        );
    }
    println!();
    for r in rows {
        println!("  {} / {}: {}", r.case, r.metric, r.note);
    }
}
