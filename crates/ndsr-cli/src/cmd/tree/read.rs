//! Reading tree files, and directories of them.

use super::*;

/// A tree file, or a directory of them (`*.yaml`, `*.yml`, `*.json`, in
/// it and below, in name order): one tree whose root is their roots'
/// common ancestor. A node in two files is refused, naming both.
pub(super) fn read_tree(path: &Path) -> CliResult<Tree> {
    if !path.is_dir() {
        return read_tree_file(path);
    }
    let mut files = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| CliError::new(Exit::InvalidInput, format!("cannot read {}: {e}", dir.display())))?;
        for entry in entries {
            let entry = entry.map_err(|e| {
                CliError::new(Exit::InvalidInput, format!("cannot read {}: {e}", dir.display()))
            })?;
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|x| x == "yaml" || x == "yml" || x == "json") {
                files.push(path);
            }
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(CliError::new(
            Exit::InvalidInput,
            format!("{} holds no tree file (*.yaml, *.yml, *.json)", path.display()),
        ));
    }
    let mut merged: Option<Tree> = None;
    let mut from: BTreeMap<String, std::path::PathBuf> = BTreeMap::new();
    for file in files {
        let tree = read_tree_file(&file)?;
        for node in tree.nodes.keys() {
            if let Some(first) = from.insert(node.clone(), file.clone()) {
                return Err(CliError::new(
                    Exit::InvalidInput,
                    format!(
                        "two entries for the node {node}: in {} and in {}",
                        first.display(),
                        file.display()
                    ),
                ));
            }
        }
        merged = Some(match merged {
            None => tree,
            Some(mut all) => {
                all.root = common_root(&all.root, &tree.root);
                all.nodes.extend(tree.nodes);
                all.acls.extend(tree.acls);
                all
            }
        });
    }
    merged.ok_or_else(|| CliError::new(Exit::InvalidInput, "no tree file"))
}

/// The deepest path that is `a` or an ancestor of it, and `b` or an
/// ancestor of it.
fn common_root(a: &str, b: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) =
        (a.split('/').filter(|s| !s.is_empty()).collect(), b.split('/').filter(|s| !s.is_empty()).collect());
    let shared: Vec<&str> = a.iter().zip(&b).take_while(|(x, y)| x == y).map(|(x, _)| *x).collect();
    format!("/{}", shared.join("/"))
}

fn read_tree_file(file: &Path) -> CliResult<Tree> {
    let doc: TreeDoc = parse_doc(file)?;
    let bad = |e: String| CliError::new(Exit::InvalidInput, format!("{}: {e}", file.display()));
    if doc.format != "ndsr-tree" || doc.version != 1 {
        return Err(bad(format!(
            "format {:?} version {} is not a tree file (format: ndsr-tree, version: 1)",
            doc.format, doc.version
        )));
    }
    ndsr::validate_path(&doc.root).map_err(|e| bad(format!("root: {e}")))?;
    let mut nodes = BTreeMap::new();
    let mut acls = BTreeMap::new();
    for (rel, tagged) in doc.nodes.0 {
        let full = join(&doc.root, &rel).map_err(|e| bad(format!("node \"{rel}\" {e}")))?;
        let bytes = tagged.bytes().map_err(|e| bad(format!("node \"{rel}\": {e}")))?;
        if let Some(acl) = tagged.acl {
            acls.insert(full.clone(), acl);
        }
        nodes.insert(full, bytes);
    }
    Ok(Tree { root: doc.root, nodes, acls })
}
