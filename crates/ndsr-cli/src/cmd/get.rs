//! `ndsr get`: one node, or a whole subtree, as YAML, JSON or paths.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use ndsr::{Registry, Snapshot};
use serde::Serialize;

use crate::args::{GetArgs, GetFormat, Global};
use crate::cmd::{check_path, connect};
use crate::error::{CliError, CliResult, Exit};
use crate::output;

/// A node as printed.
#[derive(Serialize)]
pub struct NodeView {
    path: String,
    exists: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<serde_json::Value>,
    stat: Option<StatView>,
    children: Children,
    /// In a recursive walk stopped by --max-nodes: this node's children
    /// (or some of them) were not read, so `children` is incomplete.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    children_not_read: bool,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Children {
    Names(Vec<String>),
    Nodes(Vec<NodeView>),
}

/// The useful part of a node's stat.
#[derive(Serialize)]
pub struct StatView {
    version: i32,
    cversion: i32,
    num_children: i32,
    data_length: i32,
    /// The owning session of an ephemeral node, in hex.
    ephemeral_owner: Option<String>,
    created: String,
    modified: String,
}

fn time(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// The printable view of a snapshot (children as names).
pub fn view(s: &Snapshot, with_data: bool) -> NodeView {
    NodeView {
        path: s.path.to_string(),
        exists: s.exists(),
        data: with_data.then(|| s.data.clone().map_or(serde_json::Value::Null, serde_json::Value::Object)),
        stat: s.stat.map(|st| StatView {
            version: st.version,
            cversion: st.cversion,
            num_children: st.num_children,
            data_length: st.data_length,
            ephemeral_owner: (st.ephemeral_owner != 0).then(|| format!("{:#x}", st.ephemeral_owner)),
            created: time(st.ctime),
            modified: time(st.mtime),
        }),
        children: Children::Names(s.children.clone()),
        children_not_read: false,
    }
}

fn child_path(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// Reads `root` and its descendants breadth-first, at most `max` nodes,
/// a batch of reads in flight at a time.
async fn walk(
    registry: &Registry,
    root: &str,
    max: usize,
) -> CliResult<(Vec<String>, HashMap<String, Snapshot>, bool)> {
    let progress = std::io::stderr().is_terminal();
    let mut order = Vec::new();
    let mut nodes = HashMap::new();
    let mut frontier = vec![root.to_string()];
    let mut truncated = false;
    while !frontier.is_empty() {
        let room = max.saturating_sub(order.len());
        if room == 0 {
            truncated = true;
            break;
        }
        let batch: Vec<String> = frontier.drain(..frontier.len().min(room).min(256)).collect();
        let reads = futures_join(registry, &batch).await?;
        for snapshot in reads {
            frontier.extend(snapshot.children.iter().map(|c| child_path(&snapshot.path, c)));
            order.push(snapshot.path.to_string());
            nodes.insert(snapshot.path.to_string(), snapshot);
        }
        if progress && order.len() >= 1000 {
            eprint!("\rndsr: read {} nodes", order.len());
        }
    }
    if progress && order.len() >= 1000 {
        eprintln!();
    }
    Ok((order, nodes, truncated))
}

async fn futures_join(registry: &Registry, paths: &[String]) -> CliResult<Vec<Snapshot>> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, path) in paths.iter().enumerate() {
        let (registry, path) = (registry.clone(), path.clone());
        tasks.spawn(async move { (i, registry.read(&path).await) });
    }
    let mut out: Vec<Option<Snapshot>> = vec![None; paths.len()];
    while let Some(joined) = tasks.join_next().await {
        let (i, read) =
            joined.map_err(|e| crate::error::CliError::new(crate::error::Exit::Failure, e.to_string()))?;
        out[i] = Some(read?);
    }
    Ok(out.into_iter().flatten().collect())
}

fn tree(path: &str, nodes: &HashMap<String, Snapshot>, with_data: bool) -> NodeView {
    let Some(snapshot) = nodes.get(path) else {
        return view(&Snapshot::missing(path), with_data);
    };
    let mut node = view(snapshot, with_data);
    let kids: Vec<NodeView> = snapshot
        .children
        .iter()
        .map(|c| child_path(path, c))
        .filter(|p| nodes.contains_key(p))
        .map(|p| tree(&p, nodes, with_data))
        .collect();
    node.children_not_read = kids.len() < snapshot.children.len();
    node.children = Children::Nodes(kids);
    node
}

pub async fn run(global: &Global, args: GetArgs) -> CliResult<ExitCode> {
    check_path(&args.path)?;
    if args.instances {
        return crate::cmd::discovery::instances(global, &args).await;
    }
    let registry = connect(global, false).await?;
    let max = if args.recursive { usize::try_from(args.max_nodes).unwrap_or(usize::MAX) } else { 1 };
    let walked = walk(&registry, &args.path, max).await;
    registry.close().await;
    let (order, nodes, truncated) = walked?;
    if truncated && args.recursive && !global.quiet {
        eprintln!(
            "ndsr: stopped after {} nodes (raise --max-nodes to see more); nodes whose children were not read are marked children_not_read",
            order.len()
        );
    }
    let root = &nodes[&args.path];
    let text = match args.format {
        // A missing node has no path to list.
        GetFormat::Dir if !root.exists() => None,
        GetFormat::Dir => Some(if args.recursive {
            order.join("\n")
        } else {
            std::iter::once(root.path.to_string())
                .chain(root.children.iter().map(|c| child_path(&root.path, c)))
                .collect::<Vec<_>>()
                .join("\n")
        }),
        format => {
            let node =
                if args.recursive { tree(&args.path, &nodes, args.data) } else { view(root, args.data) };
            Some(if format == GetFormat::Json { output::json_pretty(&node) } else { output::yaml(&node) })
        }
    };
    if let Some(text) = text {
        output::line(&text)?;
    }
    if !root.exists() && !args.allow_missing {
        return Err(CliError::new(
            Exit::NoNode,
            format!("no node at {} (--allow-missing to exit 0)", args.path),
        ));
    }
    Ok(ExitCode::SUCCESS)
}
