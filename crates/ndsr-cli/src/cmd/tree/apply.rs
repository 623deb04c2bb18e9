//! `ndsr apply`: the schemas checked first, then the steps in
//! all-or-nothing batches through the release path
//! ([`Registry::apply_batch`](ndsr::Registry::apply_batch)), each node
//! checked against its planned version.

use ndsr::release::{BatchChange, BatchStep};

use super::*;

/// Refuses the apply when any value fails its path's schema (or is not
/// JSON where there is a schema), before anything is written.
async fn check_schemas(registry: &Registry, steps: &[Step]) -> CliResult {
    use futures::StreamExt;
    let mut details = Vec::new();
    let mut failed = 0;
    let writes = steps.iter().filter(|s| matches!(s.op, Op::Create | Op::Update));
    // `CONCURRENCY` paths at a time, in order.
    let mut judged = futures::stream::iter(writes)
        .map(|step| async move {
            let refused = match registry.validate_config(&step.path, &step.bytes).await {
                Ok(()) => None,
                Err(ndsr::Error::Invalid { violations, .. }) => Some(violation_lines(&violations)),
                Err(ndsr::Error::Data { .. }) => registry
                    .schema(&step.path)
                    .await?
                    .map(|_| vec!["(the whole value): not JSON, and the path has a schema".to_string()]),
                Err(e) => return Err(e),
            };
            Ok((step, refused))
        })
        .buffered(CONCURRENCY);
    while let Some(judged) = judged.next().await {
        let (step, refused) = judged?;
        if let Some(lines) = refused {
            failed += 1;
            details.push(format!("{}:", step.path));
            details.extend(lines.into_iter().map(|l| format!("  {l}")));
        }
    }
    if failed > 0 {
        return Err(CliError::new(
            Exit::Invalid,
            format!("{} do not fit their schemas; nothing was written", count(failed, "value")),
        )
        .with_details(details));
    }
    Ok(())
}

/// The steps in batches that fit one transaction: at most 200 steps, and
/// about half of ZooKeeper's request limit (each value travels twice,
/// with its history entry).
fn batches<'s>(steps: &[&'s Step], message: &str) -> Vec<Vec<&'s Step>> {
    const STEPS: usize = 200;
    const BYTES: usize = 450 * 1024;
    let mut out: Vec<Vec<&Step>> = Vec::new();
    let mut size = 0;
    for step in steps {
        // The value twice (node and entry), the message in the entry's
        // header, the path in each of the node's records, and the rest.
        let cost = 2 * step.bytes.len() + message.len() + 8 * step.path.len() + 1024;
        match out.last_mut() {
            Some(last) if last.len() < STEPS && size + cost <= BYTES => {
                last.push(step);
                size += cost;
            }
            _ => {
                out.push(vec![step]);
                size = cost;
            }
        }
    }
    out
}

/// `ndsr apply`.
pub async fn apply(global: &Global, args: ApplyArgs) -> CliResult<ExitCode> {
    if args.dry_run {
        let Some(file) = args.file else {
            return Err(CliError::new(Exit::InvalidInput, "apply --dry-run needs a FILE"));
        };
        let plan = TreeDiffArgs { file, prune: args.prune, plan_out: None, tree: args.tree };
        return super::diff(global, plan).await;
    }
    let tree = args.file.as_deref().map(read_tree).transpose()?;
    let saved = args.plan.as_deref().map(read_plan).transpose()?;
    if let (Some(tree), Some((root, steps)), Some(plan_file)) = (&tree, &saved, &args.plan) {
        let file = args.file.as_deref().unwrap_or(Path::new(""));
        if tree.root != *root {
            return Err(CliError::new(
                Exit::InvalidInput,
                format!(
                    "{} is a plan for {root}, but {} is the tree of {}",
                    plan_file.display(),
                    file.display(),
                    tree.root
                ),
            ));
        }
        for step in steps {
            let same = match step.op {
                Op::Delete => true,
                Op::Acl => tree.acls.get(&step.path) == step.acl.as_ref(),
                Op::Create => {
                    tree.nodes.get(&step.path) == Some(&step.bytes)
                        && tree.acls.get(&step.path) == step.acl.as_ref()
                }
                Op::Update => tree.nodes.get(&step.path) == Some(&step.bytes),
            };
            if !same {
                return Err(CliError::new(
                    Exit::InvalidInput,
                    format!(
                        "{} was not made from {}: its value or ACL of {} is not the file's",
                        plan_file.display(),
                        file.display(),
                        step.path
                    ),
                ));
            }
        }
    }
    let registry = connect(global, &args.tree).await?;
    let result = apply_with(global, &registry, args, tree, saved).await;
    registry.close().await;
    result
}

async fn apply_with(
    global: &Global,
    registry: &Registry,
    args: ApplyArgs,
    tree: Option<Tree>,
    saved: Option<(String, Vec<Step>)>,
) -> CliResult<ExitCode> {
    let (root, steps) = match (saved, tree) {
        (Some(saved), _) => saved,
        (None, Some(tree)) => {
            let live =
                walk(registry, &tree.root, &args.tree.config_root, &|p| tree.acls.contains_key(p)).await?;
            let (steps, skipped) = plan(&tree, &live, args.prune);
            note_skipped(global, &skipped);
            (tree.root, steps)
        }
        (None, None) => return Err(CliError::new(Exit::InvalidInput, "apply needs a FILE or --plan PLAN")),
    };
    check_schemas(registry, &steps).await?;
    // Each step checked now: done already (skipped), or an ephemeral node
    // (refused); what is left goes in all-or-nothing batches.
    let mut pending = Vec::new();
    let mut already = 0;
    // The ACLs set after all values: the acl steps, and at ACL version 0
    // those of nodes to create that exist already (an apply re-run) or
    // whose ACL would keep the apply from creating under them.
    let mut acls: Vec<(&str, &[ndsr::acl::Acl], i32)> = Vec::new();
    let deferred = deferred_acls(global, &steps);
    // The live nodes, `CONCURRENCY` at a time, in the steps' order.
    let mut lives = {
        use futures::StreamExt;
        let reads = steps.iter().filter(|s| s.op != Op::Acl).map(|s| registry.read_raw(&s.path));
        futures::stream::iter(reads).buffered(CONCURRENCY).collect::<Vec<_>>().await.into_iter()
    };
    for step in &steps {
        match (step.op, &step.acl) {
            (Op::Acl, Some(acl)) => acls.push((&step.path, acl, step.expected_version)),
            (Op::Create, Some(acl)) if deferred.contains(step.path.as_str()) => {
                acls.push((&step.path, acl, 0))
            }
            _ => {}
        }
        if step.op == Op::Acl {
            continue;
        }
        let live = lives.next().transpose()?.flatten();
        match (step.op, &live) {
            (Op::Create | Op::Update, Some((bytes, _))) if *bytes == step.bytes => {
                already += 1;
                if let (Op::Create, Some(acl)) = (step.op, &step.acl) {
                    if !deferred.contains(step.path.as_str()) {
                        acls.push((&step.path, acl, 0));
                    }
                }
            }
            (Op::Create | Op::Update, Some((_, stat))) if stat.ephemeral_owner != 0 => {
                return Err(CliError::new(
                    Exit::Conflict,
                    format!(
                        "{} is an ephemeral node: apply never touches one; nothing was written",
                        step.path
                    ),
                ));
            }
            (Op::Delete, None) => already += 1,
            // (A node that still has children when its delete commits,
            // children not in the plan, fails the whole batch.)
            (Op::Delete, Some((_, stat))) if stat.ephemeral_owner != 0 => {
                return Err(CliError::new(
                    Exit::Conflict,
                    format!("{} is ephemeral now; nothing was written; make a new plan", step.path),
                ));
            }
            _ => pending.push(step),
        }
    }
    let mut done: Vec<String> = Vec::new();
    let mut queue: std::collections::VecDeque<Vec<&Step>> = batches(&pending, &args.message).into();
    while let Some(batch) = queue.pop_front() {
        let asked: Vec<BatchStep<'_>> = batch
            .iter()
            // (Acl steps are never in batches: they are set after them.)
            .filter(|step| step.op != Op::Acl)
            .map(|step| BatchStep {
                path: &step.path,
                change: match (step.op, &step.acl) {
                    (Op::Delete, _) => BatchChange::Delete,
                    (Op::Create, Some(acl)) if !deferred.contains(step.path.as_str()) => {
                        BatchChange::WriteWithAcl { bytes: &step.bytes, acl }
                    }
                    _ => BatchChange::Write(&step.bytes),
                },
                expected_version: step.expected_version,
            })
            .collect();
        match registry.apply_batch(&asked, &args.message).await {
            Ok(versions) => {
                for (step, version) in batch.iter().zip(versions) {
                    done.push(match (step.op, version) {
                        (Op::Create, Some(v)) => format!("created {} (version {v})", step.path),
                        (Op::Update, Some(v)) => format!("updated {} (version {v})", step.path),
                        _ => format!("deleted {}", step.path),
                    });
                }
            }
            Err(ndsr::Error::VersionConflict { path, expected, current }) => {
                let found =
                    current.map_or_else(|| "does not exist".to_string(), |v| format!("is at version {v}"));
                let planned = match expected {
                    -1 => "not to exist".to_string(),
                    v => format!("at version {v}"),
                };
                return Err(CliError::new(
                    Exit::VersionConflict,
                    format!(
                        "{path} changed since the plan: planned {planned}, it {found}; nothing of its batch of {} was written ({} done before); make a new plan",
                        count(batch.len(), "step"),
                        count(done.len(), "step")
                    ),
                )
                .with_details(done));
            }
            // Larger than estimated: in halves, in order.
            Err(ndsr::Error::DataTooLarge { .. }) if batch.len() > 1 => {
                let (first, second) = batch.split_at(batch.len() / 2);
                queue.push_front(second.to_vec());
                queue.push_front(first.to_vec());
            }
            Err(e) => return Err(CliError::from(e).with_details(done)),
        }
    }
    let acls_set = set_acls(registry, &acls, &mut done).await?;
    let mut lines = done.clone();
    let n = |w: &str| done.iter().filter(|l| l.starts_with(w)).count();
    let acls_set = match acls_set {
        0 => String::new(),
        k => format!(", {} set", count(k, "ACL")),
    };
    lines.push(format!(
        "applied to {root}: {} created, {} updated, {} deleted{acls_set}, {} already done",
        n("created"),
        n("updated"),
        n("deleted"),
        already
    ));
    output::line(&lines.join("\n"))?;
    Ok(ExitCode::SUCCESS)
}

/// The created nodes whose ACL is set after all values rather than by
/// their create: those under which the apply creates nodes and whose ACL
/// does not surely let the applier create them.
fn deferred_acls<'s>(global: &Global, steps: &'s [Step]) -> HashSet<&'s str> {
    let created: Vec<&str> = steps.iter().filter(|s| s.op == Op::Create).map(|s| s.path.as_str()).collect();
    steps
        .iter()
        .filter(|s| s.op == Op::Create)
        .filter_map(|s| s.acl.as_ref().map(|acl| (s.path.as_str(), acl)))
        .filter(|(path, acl)| {
            created.iter().any(|c| c != path && under(c, path)) && !acl::lets_create(acl, global)
        })
        .map(|(path, _)| path)
        .collect()
}

/// Sets each ACL that differs from the live one, conditional on its ACL
/// version, after all values (ZooKeeper cannot set an ACL in a `multi`);
/// how many it set.
async fn set_acls(
    registry: &Registry,
    acls: &[(&str, &[ndsr::acl::Acl], i32)],
    done: &mut Vec<String>,
) -> CliResult<usize> {
    let mut set = 0;
    for (path, acl, expected) in acls {
        let live = registry.read_acl(path).await.map_err(|e| CliError::from(e).with_details(done.clone()))?;
        if live.as_ref().is_some_and(|(live, _)| acl::same(acl, live)) {
            continue;
        }
        match registry.set_acl(path, acl, *expected).await {
            Ok(stat) => {
                set += 1;
                done.push(format!("set the ACL of {path} (acl version {})", stat.aversion));
            }
            Err(ndsr::Error::VersionConflict { current, .. }) => {
                let found = current
                    .map_or_else(|| "does not exist".to_string(), |v| format!("is at acl version {v}"));
                return Err(CliError::new(
                    Exit::VersionConflict,
                    format!(
                        "{path}'s ACL changed since the plan: planned at acl version {expected}, it {found}; its ACL was not set ({} done before: ACLs are set after all values, one call each); make a new plan",
                        count(done.len(), "step")
                    ),
                )
                .with_details(done.clone()));
            }
            Err(e) => return Err(CliError::from(e).with_details(done.clone())),
        }
    }
    Ok(set)
}
