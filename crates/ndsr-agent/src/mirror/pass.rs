//! One pass of a mirror: read SRC and DST in full, plan the writes that
//! make DST equal to SRC under the path, and make them.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use ndsr::registry::raw::RawWrite;
use ndsr::{Error, Registry};

use super::Mirror;

/// How many nodes are read at once.
const CONCURRENCY: usize = 32;
/// How many writes go in one transaction, at most.
const BATCH_WRITES: usize = 1000;
/// How many bytes of writes go in one transaction, at most (well under
/// ZooKeeper's 1 MB request limit).
const BATCH_BYTES: usize = 256 * 1024;

/// What one pass found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    /// Nodes under SRC's path that are mirrored (persistent nodes, and
    /// registrations when they are held).
    pub nodes: usize,
    /// Persistent nodes created on DST.
    pub created: usize,
    /// Persistent nodes whose bytes were set on DST.
    pub updated: usize,
    /// Persistent nodes deleted on DST.
    pub deleted: usize,
    /// Registrations held (or changed) on DST.
    pub registered: usize,
    /// Registrations dropped on DST.
    pub unregistered: usize,
    /// Writes refused for one node (logged): an ACL, an ephemeral node of
    /// another session where SRC has a persistent one.
    pub failed: usize,
    /// SRC's path does not exist: nothing was written (DST is left as it
    /// is, so that a wrong path or chroot does not empty it).
    pub source_missing: bool,
}

impl Pass {
    /// How many writes the pass made.
    pub fn changes(&self) -> usize {
        self.created + self.updated + self.deleted + self.registered + self.unregistered
    }
}

impl std::fmt::Display for Pass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.source_missing {
            return write!(f, "the source path does not exist; nothing written");
        }
        write!(
            f,
            "{} nodes: {} created, {} updated, {} deleted",
            self.nodes, self.created, self.updated, self.deleted
        )?;
        if self.registered + self.unregistered > 0 {
            write!(f, ", {} registered, {} unregistered", self.registered, self.unregistered)?;
        }
        if self.failed > 0 {
            write!(f, ", {} failed", self.failed)?;
        }
        Ok(())
    }
}

/// A node as read.
struct Node {
    bytes: Vec<u8>,
    ephemeral: bool,
}

/// `root` joined with `rel` (`""` or `/a/b`).
fn full(root: &str, rel: &str) -> String {
    match (root, rel) {
        (_, "") => root.to_string(),
        ("/", _) => rel.to_string(),
        _ => format!("{root}{rel}"),
    }
}

/// The relative paths of `rel`'s ancestors, `""` last.
fn ancestors(rel: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(rel.rsplit_once('/').map(|(parent, _)| parent), |p| {
        p.rsplit_once('/').map(|(parent, _)| parent)
    })
}

/// Reads the subtree at `root` breadth-first, `CONCURRENCY` nodes at a
/// time, by path relative to `root`; leaves out `config_root` and
/// `/zookeeper` (unless `root` is inside them).
async fn read_tree(
    registry: &Registry,
    root: &str,
    config_root: &str,
) -> ndsr::Result<BTreeMap<String, Node>> {
    let mut found = BTreeMap::new();
    let mut level = vec![String::new()];
    while !level.is_empty() {
        let reads = level.into_iter().map(|rel| async move {
            let path = full(root, &rel);
            let read = registry.read_node_raw(&path).await;
            (rel, path, read)
        });
        let mut reads = futures::stream::iter(reads).buffer_unordered(CONCURRENCY);
        let mut next = Vec::new();
        while let Some((rel, path, read)) = reads.next().await {
            // Gone meanwhile: as if never there (the next pass sees it).
            let Some(node) = read? else { continue };
            for child in &node.children {
                let child_path = full(&path, &format!("/{child}"));
                if child_path != config_root && child_path != "/zookeeper" {
                    next.push(format!("{rel}/{child}"));
                }
            }
            found.insert(rel, Node { bytes: node.bytes, ephemeral: node.stat.ephemeral_owner != 0 });
        }
        level = next;
    }
    Ok(found)
}

/// The writes that make DST equal to SRC.
#[derive(Default)]
struct Plan {
    /// Held registrations to drop (relative paths).
    unregister: Vec<String>,
    /// The root to create with its parents.
    root: Option<Vec<u8>>,
    /// Persistent nodes in the way of a registration (deleted first).
    clear: Vec<RawWrite>,
    /// Creates and sets, parents first.
    writes: Vec<RawWrite>,
    /// Registrations to hold (relative path, bytes).
    register: Vec<(String, Vec<u8>)>,
    /// Deletes, deepest first.
    deletes: Vec<RawWrite>,
    /// Nodes that cannot be written (logged).
    blocked: usize,
}

impl Plan {
    fn len(&self) -> usize {
        self.unregister.len()
            + usize::from(self.root.is_some())
            + self.clear.len()
            + self.writes.len()
            + self.register.len()
            + self.deletes.len()
    }
}

impl Mirror {
    /// One pass (see [`Mirror::pass`]), without the status.
    pub(super) async fn converge(&mut self) -> ndsr::Result<Pass> {
        let config_root = self.options.config_root.clone();
        let (src, dst) = tokio::join!(
            read_tree(&self.src, &self.src_path, &config_root),
            read_tree(&self.dst, &self.dst_path, &config_root),
        );
        let (mut src, mut dst) = (src?, dst?);
        if src.is_empty() {
            return Ok(Pass { source_missing: true, ..Pass::default() });
        }
        // Left out on both sides by where a node lands too: SRC's nodes
        // that would land in DST's configuration root or `/zookeeper`, and
        // DST's nodes where SRC's would come from.
        // (Unless the mirrored path is itself in one: then asked for.)
        let left_out = |path: &str| {
            let inside =
                |root: &str| path == root || path.strip_prefix(root).is_some_and(|r| r.starts_with('/'));
            inside(&config_root) || inside("/zookeeper")
        };
        if !left_out(&self.dst_path) {
            src.retain(|rel, _| !left_out(&full(&self.dst_path, rel)));
        }
        if !left_out(&self.src_path) {
            dst.retain(|rel, _| !left_out(&full(&self.src_path, rel)));
        }
        let plan = self.plan(&src, &dst);
        let nodes = src.values().filter(|n| !n.ephemeral || self.options.registrations).count();
        let mut pass = Pass { nodes, failed: plan.blocked, ..Pass::default() };
        self.status.send_modify(|s| s.nodes_behind = plan.len());
        self.apply(plan, &mut pass).await?;
        Ok(pass)
    }

    fn plan(&self, src: &BTreeMap<String, Node>, dst: &BTreeMap<String, Node>) -> Plan {
        let mut plan = Plan::default();
        let wanted: BTreeMap<&str, &[u8]> = src
            .iter()
            .filter(|(_, n)| n.ephemeral && self.options.registrations)
            .map(|(rel, n)| (rel.as_str(), n.bytes.as_slice()))
            .collect();
        for rel in self.held.keys() {
            if !wanted.contains_key(rel.as_str()) {
                plan.unregister.push(rel.clone());
            }
        }
        for (&rel, &bytes) in &wanted {
            if self.held.get(rel).map(Vec::as_slice) != Some(bytes) {
                if dst.get(rel).is_some_and(|d| !d.ephemeral) {
                    plan.clear.push(RawWrite::Delete { path: full(&self.dst_path, rel) });
                }
                plan.register.push((rel.to_string(), bytes.to_vec()));
            }
        }
        for (rel, node) in src.iter().filter(|(_, n)| !n.ephemeral) {
            if rel.is_empty() && self.dst_path == "/" {
                continue; // the root of the tree is never written
            }
            let path = full(&self.dst_path, rel);
            match dst.get(rel) {
                None if rel.is_empty() => plan.root = Some(node.bytes.clone()),
                // Our registration, dropped first.
                Some(d) if d.ephemeral && self.held.contains_key(rel) => {
                    plan.writes.push(RawWrite::Create { path, bytes: node.bytes.clone() })
                }
                None => plan.writes.push(RawWrite::Create { path, bytes: node.bytes.clone() }),
                Some(d) if d.ephemeral => {
                    tracing::warn!(%path, "an ephemeral node of another session is where the source has a persistent node; left alone");
                    plan.blocked += 1;
                }
                Some(d) if d.bytes != node.bytes => {
                    plan.writes.push(RawWrite::Set { path, bytes: node.bytes.clone() })
                }
                Some(_) => {}
            }
        }
        // Never delete a node that holds another session's ephemeral node
        // (a registration made on DST itself), nor its ancestors.
        let mut pinned = BTreeSet::new();
        for (rel, _) in dst.iter().filter(|(rel, d)| d.ephemeral && !self.held.contains_key(*rel)) {
            pinned.extend(ancestors(rel));
        }
        for (rel, d) in dst.iter().rev() {
            let kept = src.get(rel).is_some_and(|s| !s.ephemeral) || wanted.contains_key(rel.as_str());
            if kept || d.ephemeral || pinned.contains(rel.as_str()) || rel.is_empty() {
                continue;
            }
            plan.deletes.push(RawWrite::Delete { path: full(&self.dst_path, rel) });
        }
        plan
    }

    async fn apply(&mut self, plan: Plan, pass: &mut Pass) -> ndsr::Result<()> {
        for rel in plan.unregister {
            let path = full(&self.dst_path, &rel);
            match self.dst.unset(&path).await {
                Ok(()) => {
                    // No longer kept absent: the source may have a persistent node there now.
                    self.dst.unwatch(&path)?;
                    self.held.remove(&rel);
                    pass.unregistered += 1;
                }
                Err(e) if transient(&e) => return Err(e),
                Err(e) => self.refused(pass, &path, &e),
            }
            self.progress();
        }
        if let Some(bytes) = plan.root {
            match self.dst.put_raw(&self.dst_path, &bytes).await {
                Ok(()) => pass.created += 1,
                Err(e) if transient(&e) => return Err(e),
                Err(e) => self.refused(pass, &self.dst_path.clone(), &e),
            }
            self.progress();
        }
        self.write_batches(plan.clear, pass).await?;
        self.write_batches(plan.writes, pass).await?;
        let dst = self.dst.clone();
        let root = self.dst_path.clone();
        let registering = plan.register.into_iter().map(|(rel, bytes)| {
            let (dst, path) = (dst.clone(), full(&root, &rel));
            async move {
                let result = dst.set_node_raw(&path, bytes.clone()).await;
                (rel, path, bytes, result)
            }
        });
        let mut registering = futures::stream::iter(registering).buffer_unordered(CONCURRENCY);
        while let Some((rel, path, bytes, result)) = registering.next().await {
            match result {
                Ok(()) => {
                    self.held.insert(rel, bytes);
                    pass.registered += 1;
                }
                // Kept by the registry, made once possible.
                Err(
                    e @ (Error::NoConnection(_) | Error::OutcomeUnknown { .. } | Error::Contention { .. }),
                ) => {
                    self.held.insert(rel, bytes);
                    return Err(e);
                }
                Err(e @ Error::Conflict { .. }) => {
                    self.held.insert(rel, bytes);
                    self.refused(pass, &path, &e);
                }
                Err(e) => self.refused(pass, &path, &e),
            }
            self.progress();
        }
        self.write_batches(plan.deletes, pass).await?;
        Ok(())
    }

    /// Makes `writes` in transactions; a refused transaction is made again
    /// one write at a time, each refusal counted in `pass.failed`.
    async fn write_batches(&self, writes: Vec<RawWrite>, pass: &mut Pass) -> ndsr::Result<()> {
        let mut batch = Vec::new();
        let mut size = 0;
        let mut writes = writes.into_iter().peekable();
        while let Some(write) = writes.next() {
            size += write.size();
            batch.push(write);
            let full =
                writes.peek().is_none_or(|w| batch.len() >= BATCH_WRITES || size + w.size() > BATCH_BYTES);
            if !full {
                continue;
            }
            let n = batch.len();
            match self.dst.write_raw(&batch).await {
                Ok(()) => batch.iter().for_each(|w| made(pass, w)),
                Err(e) if transient(&e) => return Err(e),
                Err(e) => {
                    tracing::debug!(error = %e, "a mirror batch was refused; writing it node by node");
                    for write in &batch {
                        // Each write as planned, alone: a create never
                        // overwrites a node made since the read (say,
                        // another session's registration).
                        let result = self.dst.write_raw(std::slice::from_ref(write)).await;
                        match result {
                            Ok(()) => made(pass, write),
                            Err(e) if transient(&e) => return Err(e),
                            Err(e) => self.refused(pass, write.path(), &e),
                        }
                    }
                }
            }
            self.status.send_modify(|s| s.nodes_behind = s.nodes_behind.saturating_sub(n));
            batch.clear();
            size = 0;
        }
        Ok(())
    }

    fn refused(&self, pass: &mut Pass, path: &str, e: &Error) {
        tracing::warn!(%path, error = %e, "mirror: a write to the destination was refused");
        pass.failed += 1;
    }

    fn progress(&self) {
        self.status.send_modify(|s| s.nodes_behind = s.nodes_behind.saturating_sub(1));
    }
}

/// Counts a write made.
fn made(pass: &mut Pass, write: &RawWrite) {
    match write {
        RawWrite::Create { .. } => pass.created += 1,
        RawWrite::Set { .. } => pass.updated += 1,
        RawWrite::Delete { .. } => pass.deleted += 1,
    }
}

/// A failure of the connection, not of the node: the pass stops and is
/// retried.
fn transient(e: &Error) -> bool {
    matches!(e, Error::NoConnection(_) | Error::OutcomeUnknown { .. } | Error::Closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(bytes: &[u8], ephemeral: bool) -> Node {
        Node { bytes: bytes.to_vec(), ephemeral }
    }

    fn tree(nodes: &[(&str, &[u8], bool)]) -> BTreeMap<String, Node> {
        nodes.iter().map(|(rel, bytes, eph)| (rel.to_string(), node(bytes, *eph))).collect()
    }

    async fn mirror(registrations: bool, dst_path: &str) -> Mirror {
        // Lazy: nothing is connected; `plan` makes no call.
        let nowhere = || Registry::builder("127.0.0.1:1").lazy(true).build();
        let options = super::super::Options { registrations, ..Default::default() };
        Mirror::new(nowhere().await.unwrap(), "/s", nowhere().await.unwrap(), dst_path, options)
    }

    /// Each write as "op path".
    fn paths(writes: &[RawWrite]) -> Vec<String> {
        let op = |w: &RawWrite| match w {
            RawWrite::Create { .. } => "create",
            RawWrite::Set { .. } => "set",
            RawWrite::Delete { .. } => "delete",
        };
        writes.iter().map(|w| format!("{} {}", op(w), w.path())).collect()
    }

    #[tokio::test]
    async fn the_plan_creates_parents_first_deletes_deepest_first_and_spares_other_sessions() {
        let m = mirror(false, "/d").await;
        let src = tree(&[("", b"", false), ("/a", b"1", false), ("/a/b", b"2", false), ("/reg", b"r", true)]);
        let dst = tree(&[
            ("", b"", false),
            ("/a", b"old", false),
            ("/x", b"", false),
            ("/x/y", b"", false),
            ("/x/y/z", b"", false),
            ("/local", b"", false),
            ("/local/own", b"", true), // another session's registration on DST
        ]);
        let plan = m.plan(&src, &dst);
        assert_eq!(paths(&plan.writes), ["set /d/a", "create /d/a/b"]);
        assert!(matches!(&plan.writes[0], RawWrite::Set { bytes, .. } if bytes == b"1"));
        assert_eq!(
            plan.deletes.iter().map(RawWrite::path).collect::<Vec<_>>(),
            ["/d/x/y/z", "/d/x/y", "/d/x"]
        );
        assert!(plan.register.is_empty() && plan.unregister.is_empty() && plan.root.is_none());
        assert_eq!(plan.len(), 5);
    }

    #[tokio::test]
    async fn the_plan_holds_registrations_and_makes_the_root_with_its_parents() {
        let mut m = mirror(true, "/d").await;
        m.held.insert("/gone".into(), b"g".to_vec());
        m.held.insert("/now-persistent".into(), b"p".to_vec());
        let src = tree(&[
            ("", b"root", false),
            ("/reg", b"r", true),
            ("/now-persistent", b"p", false),
            ("/blocked", b"b", false),
        ]);
        let dst = tree(&[("/now-persistent", b"p", true), ("/gone", b"g", true), ("/blocked", b"b", true)]);
        let plan = m.plan(&src, &dst);
        assert_eq!(plan.root.as_deref(), Some(&b"root"[..]));
        assert_eq!(plan.unregister, ["/gone", "/now-persistent"]);
        assert_eq!(plan.register, [("/reg".to_string(), b"r".to_vec())]);
        assert_eq!(paths(&plan.writes), ["create /d/now-persistent"]);
        assert_eq!(plan.blocked, 1, "another session's ephemeral node where SRC has a persistent one");
        assert!(plan.deletes.is_empty());
    }

    #[test]
    fn paths_join_and_climb() {
        assert_eq!(full("/", ""), "/");
        assert_eq!(full("/", "/a/b"), "/a/b");
        assert_eq!(full("/x", "/a"), "/x/a");
        assert_eq!(full("/x", ""), "/x");
        assert_eq!(ancestors("/a/b/c").collect::<Vec<_>>(), ["/a/b", "/a", ""]);
        assert_eq!(ancestors("").count(), 0);
    }
}
