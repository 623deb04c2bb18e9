//! Case 12: configuration as code. `ndsr export` and `ndsr apply` of a
//! 10,000-node tree (100 directories of 100 small JSON values) against
//! zk-shell's `cp` doing the same copy, each a whole command started as a
//! process and timed end to end, alternating, on the run's server:
//!
//! - export: `ndsr export /tree -o file.json --format json` against
//!   `zk-shell --run-once 'cp /tree json://!file.json/ true true true'`;
//! - import: `ndsr apply file.json` (its root set to an empty path) against
//!   `zk-shell --run-once 'cp json://!file.json/ /copy true true true'`.
//!
//! zk-shell runs in its fastest mode (`asynchronous`). Every export and
//! every copy is checked afterwards (outside the timing): the copied tree
//! must hold the source's exact bytes at every path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use zookeeper_client::{Acls, Client, CreateMode};

use crate::common::{fresh, raw, Ctx, Row};
use crate::stats;

/// The zk-shell of the original's venv (`scripts/setup.sh` installs it
/// beside the original).
fn zk_shell(python: &Path) -> Result<PathBuf, String> {
    let path = python.with_file_name("zk-shell");
    if path.exists() {
        Ok(path)
    } else {
        Err(format!("{} not found: run scripts/setup.sh to install zk-shell", path.display()))
    }
}

/// Runs a command to completion with its output discarded (stderr kept
/// for the error); the seconds it took from start to exit.
async fn timed(mut command: Command, what: String) -> Result<f64, String> {
    tokio::task::spawn_blocking(move || {
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let start = Instant::now();
        let out = command.output().map_err(|e| format!("{what}: {e}"))?;
        let seconds = start.elapsed().as_secs_f64();
        if out.status.success() {
            Ok(seconds)
        } else {
            Err(format!("{what} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr)))
        }
    })
    .await
    .map_err(|e| e.to_string())?
}

/// zk-shell's name for a local JSON file: its path with `/` written `!`.
fn json_url(file: &Path) -> Result<String, String> {
    let text = file.to_str().ok_or("a temporary path that is not UTF-8")?;
    if text.contains('!') {
        return Err(format!("zk-shell cannot name {text}: it has a '!'"));
    }
    Ok(format!("json://{}/", text.replace('/', "!")))
}

/// Creates `root` with `dirs` children of `leaves` children each, every
/// node holding a small compact JSON value; pipelined.
async fn populate(client: &Client, root: &str, dirs: usize, leaves: usize) -> Result<(), String> {
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    client.mkdir(root, &opts).await.map_err(|e| e.to_string())?;
    let mut nodes: Vec<(String, Vec<u8>)> = Vec::new();
    for d in 0..dirs {
        nodes.push((format!("{root}/d{d:03}"), format!(r#"{{"dir":{d}}}"#).into_bytes()));
    }
    for d in 0..dirs {
        for l in 0..leaves {
            let value = format!(r#"{{"dir":{d},"pool":{l},"url":"http://host-{l}.example:8080/api"}}"#);
            nodes.push((format!("{root}/d{d:03}/n{l:03}"), value.into_bytes()));
        }
    }
    // Directories first: the chunks keep that order.
    for chunk in nodes.chunks(2000) {
        let creates: Vec<_> = chunk.iter().map(|(p, v)| client.create(p, v, &opts)).collect();
        for created in futures::future::join_all(creates).await {
            created.map_err(|e| format!("populate: {e}"))?;
        }
    }
    Ok(())
}

/// Every node under `root` (itself as ""), by path relative to it, with
/// its bytes; read level by level, pipelined.
async fn snapshot(client: &Client, root: &str) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut tree = BTreeMap::new();
    let mut level = vec![String::new()];
    while !level.is_empty() {
        let mut next = Vec::new();
        for chunk in level.chunks(1000) {
            let absolute: Vec<String> = chunk.iter().map(|rel| format!("{root}{rel}")).collect();
            let reads = absolute.iter().map(|p| client.get_data(p));
            let lists = absolute.iter().map(|p| client.list_children(p));
            let (reads, lists) =
                futures::future::join(futures::future::join_all(reads), futures::future::join_all(lists))
                    .await;
            for ((rel, read), list) in chunk.iter().zip(reads).zip(lists) {
                let (data, _) = read.map_err(|e| format!("read {root}{rel}: {e}"))?;
                tree.insert(rel.clone(), data);
                for child in list.map_err(|e| format!("list {root}{rel}: {e}"))? {
                    next.push(format!("{rel}/{child}"));
                }
            }
        }
        level = next;
    }
    Ok(tree)
}

/// Removes `root` and everything under it, deepest first, pipelined; a
/// missing root is fine.
async fn remove(client: &Client, root: &str) -> Result<(), String> {
    if client.check_stat(root).await.map_err(|e| e.to_string())?.is_none() {
        return Ok(());
    }
    let tree = snapshot(client, root).await?;
    let mut paths: Vec<&String> = tree.keys().collect();
    paths.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
    let mut depth = usize::MAX;
    let mut batch: Vec<String> = Vec::new();
    for rel in paths {
        let d = rel.matches('/').count();
        if d != depth || batch.len() == 2000 {
            delete_all(client, &batch).await?;
            batch.clear();
            depth = d;
        }
        batch.push(format!("{root}{rel}"));
    }
    delete_all(client, &batch).await
}

async fn delete_all(client: &Client, paths: &[String]) -> Result<(), String> {
    let deletes: Vec<_> = paths.iter().map(|p| client.delete(p, None)).collect();
    for deleted in futures::future::join_all(deletes).await {
        deleted.map_err(|e| format!("clean up: {e}"))?;
    }
    Ok(())
}

/// The number of nodes a tree file holds: `nodes` of ndsr's document, the
/// top-level keys of zk-shell's.
fn nodes_in(file: &Path, ndsr: bool) -> Result<usize, String> {
    let text = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let doc: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    let map = if ndsr { doc.get("nodes") } else { Some(&doc) };
    map.and_then(|m| m.as_object()).map(|m| m.len()).ok_or_else(|| format!("{}: no nodes", file.display()))
}

/// ndsr's export with its root moved to `root`, for an apply onto an
/// empty path.
fn rerooted(file: &Path, root: &str, out: &Path) -> Result<(), String> {
    let text = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut doc: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    doc["root"] = serde_json::Value::String(root.to_string());
    let bytes = serde_json::to_vec(&doc).map_err(|e| e.to_string())?;
    std::fs::write(out, bytes).map_err(|e| format!("{}: {e}", out.display()))
}

/// Checks a copy: the same paths with the same bytes as the source.
async fn same(
    client: &Client,
    copy: &str,
    source: &BTreeMap<String, Vec<u8>>,
    who: &str,
) -> Result<(), String> {
    let copied = snapshot(client, copy).await?;
    if &copied == source {
        return Ok(());
    }
    let missing = source.keys().filter(|k| !copied.contains_key(*k)).count();
    let differ = source.iter().filter(|(k, v)| copied.get(*k).is_some_and(|c| c != *v)).count();
    Err(format!(
        "{who}'s copy at {copy} differs from the source: {} nodes against {}, {missing} missing, {differ} with other bytes",
        copied.len(),
        source.len()
    ))
}

pub async fn run(ctx: &Ctx) -> Result<Vec<Row>, String> {
    let (dirs, leaves) = (ctx.size(100, 20), ctx.size(100, 50));
    let reps = ctx.size(5, 3);
    let ndsr = crate::agent::ndsr_binary()?;
    let shell = zk_shell(&ctx.python)?;
    let servers = ctx.servers();
    let client = raw(&servers).await;
    let base = fresh("tree");
    let source_root = format!("{base}/tree");
    populate(&client, &source_root, dirs, leaves).await?;
    let source = snapshot(&client, &source_root).await?;
    let nodes = source.len();
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;

    let (mut ndsr_export, mut shell_export, mut ndsr_import, mut shell_import) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for rep in 0..reps {
        let ndsr_file = dir.path().join(format!("ndsr-{rep}.json"));
        let shell_file = dir.path().join(format!("zk-shell-{rep}.json"));
        let shell_url = json_url(&shell_file)?;
        let ndsr_copy = format!("{base}/ndsr-{rep}");
        let shell_copy = format!("{base}/zk-shell-{rep}");
        let config_root = format!("{base}/config-{rep}");

        let mut export = Command::new(&ndsr);
        export
            .args(["--server", &servers, "-q", "export", &source_root, "--format", "json", "-o"])
            .arg(&ndsr_file);
        let mut shell_out = Command::new(&shell);
        shell_out.args(["--run-once", &format!("cp {source_root} {shell_url} true true true"), &servers]);
        // Alternate which goes first.
        let (a, b) = if rep % 2 == 0 {
            let a = timed(export, "ndsr export".into()).await?;
            (a, timed(shell_out, "zk-shell cp to json".into()).await?)
        } else {
            let b = timed(shell_out, "zk-shell cp to json".into()).await?;
            (timed(export, "ndsr export".into()).await?, b)
        };
        ndsr_export.push(a);
        shell_export.push(b);
        for (file, is_ndsr, who) in [(&ndsr_file, true, "ndsr export"), (&shell_file, false, "zk-shell cp")] {
            let n = nodes_in(file, is_ndsr)?;
            if n != nodes {
                return Err(format!("{who} wrote {n} nodes of {nodes}"));
            }
        }

        let plan_file = dir.path().join(format!("ndsr-{rep}-rerooted.json"));
        rerooted(&ndsr_file, &ndsr_copy, &plan_file)?;
        let mut apply = Command::new(&ndsr);
        apply.args(["--server", &servers, "-q", "apply", "--config-root", &config_root]).arg(&plan_file);
        let mut shell_in = Command::new(&shell);
        shell_in.args(["--run-once", &format!("cp {shell_url} {shell_copy} true true true"), &servers]);
        let (a, b) = if rep % 2 == 0 {
            let b = timed(shell_in, "zk-shell cp from json".into()).await?;
            (timed(apply, "ndsr apply".into()).await?, b)
        } else {
            let a = timed(apply, "ndsr apply".into()).await?;
            (a, timed(shell_in, "zk-shell cp from json".into()).await?)
        };
        ndsr_import.push(a);
        shell_import.push(b);
        same(&client, &ndsr_copy, &source, "ndsr apply").await?;
        same(&client, &shell_copy, &source, "zk-shell cp").await?;
        for path in [&ndsr_copy, &shell_copy, &config_root] {
            remove(&client, path).await?;
        }
        for file in [&ndsr_file, &shell_file, &plan_file] {
            let _ = std::fs::remove_file(file);
        }
    }
    remove(&client, &base).await?;

    let each = |v: &[f64]| v.iter().map(|s| format!("{s:.2}")).collect::<Vec<_>>().join(", ");
    Ok(vec![
        Row::compare(
            "12 tree copy",
            &format!("export, {nodes} nodes to a JSON file, s (median of {reps})"),
            stats::median(&ndsr_export),
            "zk-shell cp",
            stats::median(&shell_export),
            "—",
            None,
            format!(
                "whole commands, alternating; ndsr {}; zk-shell (asynchronous) {}; both files hold all {nodes} nodes",
                each(&ndsr_export),
                each(&shell_export)
            ),
        ),
        Row::compare(
            "12 tree copy",
            &format!("import of that file to an empty path, s (median of {reps})"),
            stats::median(&ndsr_import),
            "zk-shell cp",
            stats::median(&shell_import),
            "—",
            None,
            format!(
                "ndsr apply (a release with its history entry per node, multis of 200) {}; zk-shell (asynchronous) {}; both copies checked byte for byte",
                each(&ndsr_import),
                each(&shell_import)
            ),
        ),
    ])
}
