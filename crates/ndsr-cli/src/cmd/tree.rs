//! Configuration as code: `ndsr export`, `ndsr diff` and `ndsr apply`.
//!
//! A tree file holds a subtree's nodes, each with its exact bytes tagged
//! `json` (the bytes are the compact JSON of the value), `text` (UTF-8) or
//! `base64`; no tag is empty data. A plan is the steps that bring the live
//! tree to the file, with the version each was made against.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::Path;
use std::process::ExitCode;

use base64::Engine;
use ndsr::acl::Acl;
use ndsr::Registry;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Map, Value};

use crate::args::{ApplyArgs, ExportArgs, Global, TreeConfig, TreeDiffArgs, TreeFormat};
use crate::cmd::{builder, check_path};
use crate::error::{count, violation_lines, CliError, CliResult, Exit};
use crate::output;

/// How many nodes are read at once.
const CONCURRENCY: usize = 16;

/// A node's data as written in a tree or a plan.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Tagged {
    #[serde(default, deserialize_with = "present")]
    json: Option<Value>,
    text: Option<String>,
    base64: Option<String>,
    /// The node's ACL (`None`: not compared, not set).
    #[serde(default, deserialize_with = "acl::acl_list")]
    acl: Option<Vec<Acl>>,
}

/// `message` without a trailing ` at line L column C` (an error told
/// again gets its location again).
fn strip_location(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(at) if message[at + 9..].split(" column ").count() == 2 => &message[..at],
        _ => message,
    }
}

/// `json: null` is the value null, not "no tag".
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl Tagged {
    /// The exact bytes, or why not.
    fn bytes(&self) -> Result<Vec<u8>, String> {
        match (&self.json, &self.text, &self.base64) {
            (None, None, None) => Ok(Vec::new()),
            (Some(v), None, None) => serde_json::to_vec(v).map_err(|e| e.to_string()),
            (None, Some(t), None) => Ok(t.as_bytes().to_vec()),
            (None, None, Some(b)) => base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .map_err(|e| format!("base64 is not valid ({e})")),
            _ => Err("give one of json, text or base64, not two".into()),
        }
    }
}

/// The tag of `bytes` as a JSON object: `{json: V}`, `{text: S}`,
/// `{base64: S}` or `{}`, the first that gives the bytes back when read.
fn tag(bytes: &[u8], format: TreeFormat) -> Value {
    if bytes.is_empty() {
        return json!({});
    }
    let mut candidates = Vec::new();
    if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
        if serde_json::to_vec(&value).is_ok_and(|v| v == bytes) {
            candidates.push(json!({ "json": value }));
        }
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        candidates.push(json!({ "text": text }));
    }
    for candidate in candidates {
        if reads_back(&candidate, format).as_deref() == Some(bytes) {
            return candidate;
        }
    }
    json!({ "base64": base64::engine::general_purpose::STANDARD.encode(bytes) })
}

/// The bytes `tagged` gives when written in `format` and read again.
fn reads_back(tagged: &Value, format: TreeFormat) -> Option<Vec<u8>> {
    let parsed: Tagged = match format {
        TreeFormat::Json => serde_json::from_str(&serde_json::to_string(tagged).ok()?).ok()?,
        TreeFormat::Yaml => serde_yaml_ng::from_str(&(output::yaml(tagged) + "\n")).ok()?,
    };
    parsed.bytes().ok()
}

/// The `nodes` map, in file order, duplicates refused.
struct Nodes(Vec<(String, Tagged)>);

impl<'de> Deserialize<'de> for Nodes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Nodes, D::Error> {
        struct NodesVisitor;
        impl<'de> Visitor<'de> for NodesVisitor {
            type Value = Nodes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of relative paths to node data")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Nodes, A::Error> {
                let mut seen = HashSet::new();
                let mut nodes = Vec::new();
                while let Some(path) = map.next_key::<String>()? {
                    if !seen.insert(path.clone()) {
                        return Err(de::Error::custom(format!("two entries for the node \"{path}\"")));
                    }
                    // YAML's errors name the node (`nodes.a: ...`) and
                    // the line; JSON's only the line: the node is added.
                    let tagged: Option<Tagged> = map.next_value().map_err(|e| {
                        let message = e.to_string();
                        match message.starts_with("nodes.") {
                            true => e,
                            false => {
                                de::Error::custom(format!("node \"{path}\": {}", strip_location(&message)))
                            }
                        }
                    })?;
                    nodes.push((path, tagged.unwrap_or_default()));
                }
                Ok(Nodes(nodes))
            }
        }
        d.deserialize_map(NodesVisitor)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TreeDoc {
    format: String,
    version: u32,
    root: String,
    nodes: Nodes,
}

/// A tree file, read and checked: full paths to bytes, and to the ACLs
/// of the nodes that have one.
struct Tree {
    root: String,
    nodes: BTreeMap<String, Vec<u8>>,
    acls: BTreeMap<String, Vec<Acl>>,
}

/// The text of `file` parsed as YAML, or as JSON when it starts with `{`.
fn parse_doc<T: for<'de> Deserialize<'de>>(file: &Path) -> CliResult<T> {
    let bad = |e: String| CliError::new(Exit::InvalidInput, format!("{}: {e}", file.display()));
    let text = std::fs::read_to_string(file).map_err(|e| bad(format!("cannot read it ({e})")))?;
    if text.trim_start().starts_with('{') {
        serde_json::from_str(&text).map_err(|e| bad(format!("not valid JSON: {e}")))
    } else {
        serde_yaml_ng::from_str(&text).map_err(|e| bad(format!("not valid YAML: {e}")))
    }
}

/// `root` joined with a relative path of the file; refuses paths that
/// are absolute or leave the root.
fn join(root: &str, rel: &str) -> Result<String, String> {
    if rel.is_empty() {
        return Ok(root.to_string());
    }
    if rel.starts_with('/') {
        return Err("is absolute; paths in nodes are relative to root".into());
    }
    if rel.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err("is not a plain relative path (an empty, . or .. segment: it would leave the root or name a node twice)".into());
    }
    let full = if root == "/" { format!("/{rel}") } else { format!("{root}/{rel}") };
    ndsr::validate_path(&full).map_err(|e| e.to_string())?;
    Ok(full)
}

/// The path of `full` relative to `root`.
fn relative<'a>(root: &str, full: &'a str) -> &'a str {
    if full == root {
        return "";
    }
    let rest = full.strip_prefix(root).unwrap_or(full);
    rest.strip_prefix('/').unwrap_or(rest)
}

/// A live node as the walk found it.
struct Live {
    bytes: Vec<u8>,
    version: i32,
    ephemeral: bool,
    /// Children the walk left out (the configuration root, /zookeeper).
    hidden_children: bool,
    /// The ACL and its version, when asked for.
    acl: Option<(Vec<Acl>, i32)>,
}

/// Whether `path` is `root` or under it.
fn under(path: &str, root: &str) -> bool {
    let root = root.trim_end_matches('/');
    path == root || path.strip_prefix(root).is_some_and(|r| r.starts_with('/')) || root.is_empty()
}

/// Reads the subtree at `root` breadth-first, `CONCURRENCY` nodes at a
/// time, leaving out `config_root` and `/zookeeper`; the ACLs of the
/// nodes `acls` picks.
async fn walk(
    registry: &Registry,
    root: &str,
    config_root: &str,
    acls: &dyn Fn(&str) -> bool,
) -> CliResult<BTreeMap<String, Live>> {
    let mut found = BTreeMap::new();
    let mut level = vec![root.to_string()];
    while !level.is_empty() {
        let mut next = Vec::new();
        for chunk in level.chunks(CONCURRENCY) {
            let mut tasks = tokio::task::JoinSet::new();
            for (i, path) in chunk.iter().enumerate() {
                let registry = registry.clone();
                let path = path.clone();
                let want_acl = acls(&path);
                tasks.spawn(async move {
                    let raw = registry.read_raw(&path).await?;
                    let children = match &raw {
                        Some((_, stat)) if stat.num_children > 0 => registry.read(&path).await?.children,
                        _ => Vec::new(),
                    };
                    let acl = match raw.is_some() && want_acl {
                        true => registry.read_acl(&path).await?.map(|(acl, stat)| (acl, stat.aversion)),
                        false => None,
                    };
                    Ok::<_, ndsr::Error>((i, path, raw, children, acl))
                });
            }
            let mut results = Vec::new();
            while let Some(joined) = tasks.join_next().await {
                let done = joined.map_err(|e| CliError::new(Exit::Failure, format!("a read failed: {e}")))?;
                results.push(done?);
            }
            results.sort_by_key(|r| r.0);
            for (_, path, raw, children, acl) in results {
                let Some((bytes, stat)) = raw else { continue };
                let mut hidden = false;
                for child in children {
                    let child = if path == "/" { format!("/{child}") } else { format!("{path}/{child}") };
                    if under(&child, config_root) || child == "/zookeeper" {
                        hidden = true;
                    } else {
                        next.push(child);
                    }
                }
                let live = Live {
                    bytes,
                    version: stat.version,
                    ephemeral: stat.ephemeral_owner != 0,
                    hidden_children: hidden,
                    acl,
                };
                found.insert(path, live);
            }
        }
        level = next;
    }
    Ok(found)
}

async fn connect(global: &Global, tree: &TreeConfig) -> CliResult<Registry> {
    check_path(&tree.config_root)
        .map_err(|e| CliError::new(Exit::InvalidInput, format!("--config-root: {}", e.message)))?;
    let mut builder = builder(global, false)?.config_root(tree.config_root.clone());
    if let Some(author) = &tree.author {
        builder = builder.author(author.clone());
    }
    Ok(builder.build().await?)
}

/// `ndsr export`.
pub async fn export(global: &Global, args: ExportArgs) -> CliResult<ExitCode> {
    check_path(&args.path)?;
    let registry = connect(global, &args.tree).await?;
    let result = walk(&registry, &args.path, &args.tree.config_root, &|_| args.acls).await;
    registry.close().await;
    let live = result?;
    if live.is_empty() {
        return Err(CliError::new(Exit::NoNode, format!("{} does not exist", args.path)));
    }
    let mut nodes = Map::new();
    for (path, node) in &live {
        if node.ephemeral && !args.ephemeral {
            continue;
        }
        if let Some(entry) = node.acl.iter().flat_map(|(acl, _)| acl).find(|a| acl::hidden(a)) {
            return Err(CliError::new(
                Exit::NotAuthorized,
                format!(
                    "{path}: ZooKeeper hides the digest hashes of its ACL from a client without ADMIN on it (it shows {}); export --acls with credentials (-u, -p) that have ADMIN there",
                    entry.id()
                ),
            ));
        }
        let mut tagged = tag(&node.bytes, args.format);
        if let (Value::Object(fields), Some((acl, _))) = (&mut tagged, &node.acl) {
            fields.insert("acl".into(), acl::to_value(acl));
        }
        nodes.insert(relative(&args.path, path).to_string(), tagged);
    }
    let doc = json!({"format": "ndsr-tree", "version": 1, "root": args.path, "nodes": nodes});
    let text = match args.format {
        TreeFormat::Yaml => output::yaml(&doc) + "\n",
        TreeFormat::Json => output::json_pretty(&doc) + "\n",
    };
    match &args.output {
        Some(file) => std::fs::write(file, text)
            .map_err(|e| CliError::new(Exit::Failure, format!("cannot write {}: {e}", file.display())))?,
        None => output::line(text.trim_end_matches('\n'))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// One step of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Op {
    Create,
    Update,
    Delete,
    /// Set an existing node's ACL (`expected_version` is its ACL version).
    Acl,
}

#[derive(Debug)]
struct Step {
    op: Op,
    /// The full path.
    path: String,
    expected_version: i32,
    /// What create and update write.
    bytes: Vec<u8>,
    /// The live bytes an update replaces.
    before: Vec<u8>,
    /// The ACL a create gives or an `acl` step sets (`None`: the registry's).
    acl: Option<Vec<Acl>>,
    /// The live ACL an `acl` step replaces.
    before_acl: Vec<Acl>,
}

/// The steps that bring the live tree to `tree`: creates and updates in
/// path order (parents first), then deletes deepest first. Also the live
/// ephemeral nodes the file names, which are left alone.
fn plan(tree: &Tree, live: &BTreeMap<String, Live>, prune: bool) -> (Vec<Step>, Vec<String>) {
    let mut steps = Vec::new();
    let mut skipped = Vec::new();
    for (path, bytes) in &tree.nodes {
        match live.get(path) {
            None => steps.push(Step {
                op: Op::Create,
                path: path.clone(),
                expected_version: -1,
                bytes: bytes.clone(),
                before: Vec::new(),
                acl: tree.acls.get(path).cloned(),
                before_acl: Vec::new(),
            }),
            Some(node) if node.ephemeral => skipped.push(path.clone()),
            Some(node) => {
                if node.bytes != *bytes {
                    steps.push(Step {
                        op: Op::Update,
                        path: path.clone(),
                        expected_version: node.version,
                        bytes: bytes.clone(),
                        before: node.bytes.clone(),
                        acl: None,
                        before_acl: Vec::new(),
                    });
                }
                if let (Some(acl), Some((live, aversion))) = (tree.acls.get(path), &node.acl) {
                    if !acl::same(acl, live) {
                        steps.push(Step {
                            op: Op::Acl,
                            path: path.clone(),
                            expected_version: *aversion,
                            bytes: Vec::new(),
                            before: Vec::new(),
                            acl: Some(acl.clone()),
                            before_acl: live.clone(),
                        });
                    }
                }
            }
        }
    }
    if prune {
        // Deepest first: a node goes only when everything under it goes.
        let mut order: Vec<&String> = live.keys().collect();
        order.sort_by_key(|p| (std::cmp::Reverse(p.matches('/').count()), (*p).clone()));
        let mut kept: HashSet<String> = HashSet::new();
        let mut deletes = Vec::new();
        for path in order {
            let node = &live[path];
            let keep = path == &tree.root
                || tree.nodes.contains_key(path)
                || node.ephemeral
                || node.hidden_children
                || kept.contains(path);
            if keep {
                if let Some((parent, _)) = path.rsplit_once('/') {
                    kept.insert(if parent.is_empty() { "/".into() } else { parent.to_string() });
                }
            } else {
                deletes.push(Step {
                    op: Op::Delete,
                    path: path.clone(),
                    expected_version: node.version,
                    bytes: Vec::new(),
                    before: node.bytes.clone(),
                    acl: None,
                    before_acl: Vec::new(),
                });
            }
        }
        steps.extend(deletes);
    }
    (steps, skipped)
}

/// The JSON value of `bytes`, if they are JSON.
fn json_of(bytes: &[u8]) -> Option<Value> {
    serde_json::from_slice(bytes).ok()
}

/// The plan's lines: `+ path`, `~ path` and its changes, `- path`.
fn plan_lines(steps: &[Step]) -> Vec<String> {
    let mut lines = Vec::new();
    for step in steps {
        match step.op {
            Op::Create => {
                lines.push(format!("+ {}", step.path));
                if let Some(acl) = &step.acl {
                    lines.push(format!("    acl: {}", acl::show(acl)));
                }
            }
            Op::Delete => lines.push(format!("- {}", step.path)),
            Op::Acl => {
                lines.push(format!("~ {} (acl, acl version {})", step.path, step.expected_version));
                lines.push(format!("    old: {}", acl::show(&step.before_acl)));
                lines.push(format!("    new: {}", acl::show(step.acl.as_deref().unwrap_or_default())));
            }
            Op::Update => {
                lines.push(format!("~ {} (version {})", step.path, step.expected_version));
                match (json_of(&step.before), json_of(&step.bytes)) {
                    (Some(before), Some(after)) => {
                        lines.extend(ndsr::release::diff(&before, &after).iter().map(|c| format!("    {c}")))
                    }
                    _ => lines.push(format!(
                        "    {} bytes -> {} bytes (not both JSON)",
                        step.before.len(),
                        step.bytes.len()
                    )),
                }
            }
        }
    }
    lines
}

fn summary(steps: &[Step]) -> String {
    let n = |op: Op| steps.iter().filter(|s| s.op == op).count();
    let acls = match n(Op::Acl) {
        0 => String::new(),
        k => format!(", {} to set", count(k, "ACL")),
    };
    format!("{} to create, {} to update, {} to delete{acls}", n(Op::Create), n(Op::Update), n(Op::Delete))
}

fn note_skipped(global: &Global, skipped: &[String]) {
    if !global.quiet {
        for path in skipped {
            eprintln!("ndsr: {path} is an ephemeral node live; left alone");
        }
    }
}

/// `ndsr diff`.
pub async fn diff(global: &Global, args: TreeDiffArgs) -> CliResult<ExitCode> {
    let tree = read_tree(&args.file)?;
    let registry = connect(global, &args.tree).await?;
    let live = walk(&registry, &tree.root, &args.tree.config_root, &|p| tree.acls.contains_key(p)).await;
    registry.close().await;
    let (steps, skipped) = plan(&tree, &live?, args.prune);
    note_skipped(global, &skipped);
    if let Some(out) = &args.plan_out {
        let text = output::json_pretty(&plan_doc(&tree.root, &steps)) + "\n";
        std::fs::write(out, text)
            .map_err(|e| CliError::new(Exit::Failure, format!("cannot write {}: {e}", out.display())))?;
    }
    if steps.is_empty() {
        output::line(&format!("no changes: {} matches {}", tree.root, args.file.display()))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut lines = plan_lines(&steps);
    lines.push(format!("plan: {}", summary(&steps)));
    output::line(&lines.join("\n"))?;
    Ok(ExitCode::from(Exit::PlanHasChanges as u8))
}

mod acl;
mod apply;
mod plan_file;
mod read;

use plan_file::{plan_doc, read_plan};
use read::read_tree;

pub use apply::apply;
