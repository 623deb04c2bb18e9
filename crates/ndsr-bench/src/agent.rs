//! Case 10: `ndsr agent`, the real binary on the run's server.
//!
//! - SSE propagation: time from the writer sending a change to an SSE
//!   client reading its event, against the library's own subscriber
//!   watching the same path in the same run.
//! - Blocking queries: N clients (1,000) wait at once on one node with
//!   `?index=&wait=`; one change answers them all. Time from send to each
//!   answer (against the library's subscriber seeing the same change), the
//!   answers per second, and the agent's memory per waiting client (its
//!   VmRSS with all of them waiting, less before). Also each round's first
//!   answer (the agent's latency without the queue of the others) and the
//!   CPU the agent and the clients spend per answer (what bounds the p50:
//!   the 500th answer waits for the CPU of 499 before it).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use zookeeper_client::{Acls, CreateMode};

use crate::common::{fresh, mono_ns, raw, Ctx, Row};
use crate::propagation::{measure, rust_observer, started, Seen};
use crate::stats::quantile;

/// The `ndsr` binary: `NDSR_BIN`, or built now with this bench's profile.
pub fn ndsr_binary() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("NDSR_BIN") {
        return Ok(bin.into());
    }
    let release = !cfg!(debug_assertions);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "--locked", "-p", "ndsr-cli", "--bin", "ndsr"]);
    if release {
        build.arg("--release");
    }
    let status = build.status().map_err(|e| format!("cargo build: {e}"))?;
    if !status.success() {
        return Err(format!("building ndsr failed: {status}"));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    Ok(target.join(if release { "release" } else { "debug" }).join("ndsr"))
}

/// The agent process; killed on drop.
struct Agent {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    fn start(servers: &str, root: &str) -> Result<Agent, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let config = dir.path().join("agent.toml");
        // Room for every waiting client: the defaults (1,024 connections,
        // 256 streams) would refuse most of them 503.
        let text = format!("roots = [\"{root}\"]\n[http]\nmax_connections = 4096\nmax_streams = 2048\n");
        std::fs::write(&config, text).map_err(|e| e.to_string())?;
        let mut child = Command::new(ndsr_binary()?)
            .args(["--server", servers, "-q", "agent", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting ndsr agent: {e}"))?;
        let mut line = String::new();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
            .map_err(|e| e.to_string())?;
        let address = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http://"))
            .map(|a| a.trim_end_matches('/').to_string())
            .ok_or_else(|| format!("the agent did not say where it listens: {line:?}"))?;
        Ok(Agent { child, address, _dir: dir })
    }

    fn rss_kb(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
            })
            .unwrap_or(0)
    }

    /// The agent's CPU time so far, ns (all its threads).
    fn cpu_ns(&self) -> u64 {
        cpu_ns(&format!("/proc/{}", self.child.id()))
    }
}

/// A process's CPU time so far, ns: the sum of its threads' run time from
/// `/proc/<pid>/task/*/schedstat` (ns, unlike `stat`'s 10 ms ticks).
pub fn cpu_ns(proc_dir: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("{proc_dir}/task")) else { return 0 };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// One HTTP/1.1 GET with `Connection: close`: (status, body).
async fn get(address: &str, path: &str) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect(address).await.map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no header end")?;
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or("no status")?;
    Ok((status, body.to_string()))
}

fn index_of(body: &str) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(body).ok()?["index"].as_u64()
}

/// An SSE client of `/v1/watch/<path>`: each event's (read time, children).
async fn sse_observer(address: String, path: String) -> Result<(Seen, tokio::task::JoinHandle<()>), String> {
    let mut stream = TcpStream::connect(&address).await.map_err(|e| e.to_string())?;
    let request =
        format!("GET /v1/watch{path} HTTP/1.1\r\nHost: {address}\r\nAccept: text/event-stream\r\n\r\n");
    stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        // The head, up to the blank line.
        loop {
            line.clear();
            if reader.read_line(&mut line).await.unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
        }
        // The body is chunked: a size line, that many bytes, CRLF.
        let mut text = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let Ok(size) = usize::from_str_radix(line.trim(), 16) else { return };
            let mut chunk = vec![0; size + 2];
            if reader.read_exact(&mut chunk).await.is_err() {
                return;
            }
            let t = mono_ns();
            text.push_str(&String::from_utf8_lossy(&chunk[..size]));
            while let Some(end) = text.find("\n\n") {
                let event: String = text.drain(..end + 2).collect();
                for data in event.lines().filter_map(|l| l.strip_prefix("data: ")) {
                    let n = serde_json::from_str::<serde_json::Value>(data)
                        .ok()
                        .and_then(|v| v["children"].as_array().map(Vec::len))
                        .unwrap_or(0);
                    if tx.send((t, n)).is_err() {
                        return;
                    }
                }
            }
        }
    });
    Ok((rx, task))
}

pub async fn run(ctx: &Ctx) -> Result<Vec<Row>, String> {
    let root = fresh("agent");
    let servers = ctx.servers();
    let agent = {
        let (servers, root) = (servers.clone(), root.clone());
        tokio::task::spawn_blocking(move || Agent::start(&servers, &root))
            .await
            .map_err(|e| e.to_string())??
    };
    let writer = raw(&servers).await;
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());

    // SSE propagation, against the library's subscriber on the same path.
    let changes = ctx.size(1000, 200);
    let service = format!("{root}/web");
    writer.mkdir(&service, &opts).await.map_err(|e| e.to_string())?;
    let (registry, mut ours, ndsr_task) = rust_observer(ctx, &service).await?;
    let (mut sse, sse_task) = sse_observer(agent.address.clone(), service.clone()).await?;
    started(&mut [&mut ours, &mut sse]).await?;
    let (samples, lost) = measure(&writer, &service, changes, &mut [&mut ours, &mut sse]).await?;
    let [lib, stream] = <[Vec<f64>; 2]>::try_from(samples).map_err(|_| "two observers")?;
    sse_task.abort();
    let note = format!(
        "{changes} changes; samples library {} / SSE {}; lost {} / {}",
        lib.len(),
        stream.len(),
        lost[0],
        lost[1]
    );
    let mut rows = vec![
        Row::compare(
            "10 agent",
            "SSE event p50 from send, µs",
            quantile(&stream, 0.5),
            "library subscriber",
            quantile(&lib, 0.5),
            "",
            None,
            note.clone(),
        ),
        Row::compare(
            "10 agent",
            "SSE event p99 from send, µs",
            quantile(&stream, 0.99),
            "library subscriber",
            quantile(&lib, 0.99),
            "",
            None,
            note,
        ),
    ];

    // Blocking queries: N clients wait on one node; one change answers all.
    let clients = ctx.size(1000, 200);
    let rounds = ctx.size(5, 2);
    let node = format!("{root}/config");
    writer.create(&node, b"{}", &opts).await.map_err(|e| e.to_string())?;
    let (status, body) = get(&agent.address, &format!("/v1/nodes{node}")).await?;
    if status != 200 {
        return Err(format!("GET {node}: {status} {body}"));
    }
    let mut index = index_of(&body).ok_or("no index")?;
    let (lib_registry, mut lib_seen, lib_task) = {
        let registry = ndsr::Registry::builder(&servers).build().await.map_err(|e| e.to_string())?;
        let mut subscription = registry.subscribe(&node).map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::unbounded_channel::<u64>();
        let task = tokio::spawn(async move {
            while subscription.next().await.is_some() {
                if tx.send(mono_ns()).is_err() {
                    break;
                }
            }
        });
        (registry, rx, task)
    };
    lib_seen.recv().await;
    let (mut answers, mut lib_answers, mut per_client_kb, mut all_answered_s) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Each round's first answer (the agent's latency without the queue of
    // the other 999), and the CPU the agent and the clients (this process)
    // spent from the change to the last answer, per answer.
    let (mut first_answers, mut agent_cpu_us, mut client_cpu_us) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..=rounds {
        // Round 0 warms the agent up with a few clients (its allocator,
        // runtime and buffers); memory is read in round 1, the first time
        // it holds all the clients (later rounds reuse what that one freed).
        let clients = if round == 0 { 10 } else { clients };
        let before = agent.rss_kb();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let query = format!("/v1/nodes{node}?index={index}&wait=60s");
        for _ in 0..clients {
            let (address, query, done) = (agent.address.clone(), query.clone(), done_tx.clone());
            tokio::spawn(async move {
                let answer = get(&address, &query).await;
                let _ = done.send((mono_ns(), answer));
            });
        }
        drop(done_tx);
        // Wait until every client is waiting in the agent.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (_, metrics) = get(&agent.address, "/metrics").await?;
            let waiting = metrics
                .lines()
                .find_map(|l| l.strip_prefix("ndsr_http_requests_in_flight "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0);
            if waiting as usize > clients {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("only {waiting} of {clients} clients got to wait"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let waiting_kb = agent.rss_kb();
        let (agent_cpu, client_cpu) = (agent.cpu_ns(), cpu_ns("/proc/self"));
        let sent = mono_ns();
        writer
            .set_data(&node, format!("{{\"round\": {round}}}").as_bytes(), None)
            .await
            .map_err(|e| e.to_string())?;
        let lib_t = tokio::time::timeout(Duration::from_secs(10), lib_seen.recv()).await.ok().flatten();
        let mut last = sent;
        let (mut round_answers, mut bodies) = (Vec::with_capacity(clients), Vec::with_capacity(clients));
        // Only collected while the answers come: checking them (JSON) would
        // take the CPU the agent and the other clients need then.
        while let Some((t, answer)) = done_rx.recv().await {
            bodies.push(answer?);
            round_answers.push(t.saturating_sub(sent) as f64 / 1000.0);
            last = last.max(t);
        }
        let (agent_cpu, client_cpu) =
            (agent.cpu_ns().saturating_sub(agent_cpu), cpu_ns("/proc/self").saturating_sub(client_cpu));
        for (status, body) in bodies {
            if status != 200 {
                return Err(format!("a blocking query answered {status}: {body}"));
            }
            index = index.max(index_of(&body).ok_or("no index")?);
        }
        if round > 0 {
            first_answers.push(round_answers.iter().copied().fold(f64::INFINITY, f64::min));
            agent_cpu_us.push(agent_cpu as f64 / 1000.0 / clients as f64);
            client_cpu_us.push(client_cpu as f64 / 1000.0 / clients as f64);
            answers.extend(round_answers);
            if let Some(t) = lib_t {
                lib_answers.push(t.saturating_sub(sent) as f64 / 1000.0);
            }
            all_answered_s.push((last - sent) as f64 / 1e9);
        }
        if round == 1 {
            per_client_kb.push(waiting_kb.saturating_sub(before) as f64 / clients as f64);
        }
    }
    lib_registry.close().await;
    registry.close().await;
    let _ = lib_task.await;
    let _ = ndsr_task.await;
    let per_client = per_client_kb.first().map(|kb| kb * 1024.0);
    let all = quantile(&all_answered_s, 0.5);
    let note = format!(
        "{clients} clients waiting at once (client and agent share the machine's cores), {rounds} rounds after a \
         warm-up; answers {}; memory: VmRSS growth the first time all wait",
        answers.len()
    );
    rows.extend([
        Row::compare(
            "10 agent",
            &format!("blocking answer p50 from send, {clients} waiting, µs"),
            quantile(&answers, 0.5),
            "library subscriber",
            quantile(&lib_answers, 0.5),
            "",
            None,
            note.clone(),
        ),
        Row::compare(
            "10 agent",
            &format!("blocking answer p99 from send, {clients} waiting, µs"),
            quantile(&answers, 0.99),
            "library subscriber",
            quantile(&lib_answers, 0.99),
            "",
            None,
            note.clone(),
        ),
        Row::compare(
            "10 agent",
            &format!("blocking first answer from send, {clients} waiting, µs (median of rounds)"),
            quantile(&first_answers, 0.5),
            "library subscriber",
            quantile(&lib_answers, 0.5),
            "",
            None,
            note.clone(),
        ),
        Row::compare(
            "10 agent",
            "CPU per blocking answer, agent, µs (median of rounds)",
            quantile(&agent_cpu_us, 0.5),
            "clients (bench)",
            quantile(&client_cpu_us, 0.5),
            "",
            None,
            "CPU from the change to the last answer, over the answers; the clients' figure is this \
             process's (the library subscriber and ZooKeeper's client included)"
                .into(),
        ),
        Row::compare(
            "10 agent",
            "blocking answers per second (all answered)",
            all.map(|s| clients as f64 / s),
            "none",
            None,
            "",
            None,
            note.clone(),
        ),
        Row::compare(
            "10 agent",
            "agent memory per waiting client, bytes",
            per_client,
            "none",
            None,
            "",
            None,
            note,
        ),
    ]);
    Ok(rows)
}
