//! `ndsr apply`: the schemas checked first, then each step through the
//! release path, compare-and-set on the plan's versions.

use super::*;

/// Refuses the apply when any value fails its path's schema (or is not
/// JSON where there is a schema), before anything is written.
async fn check_schemas(registry: &Registry, steps: &[Step]) -> CliResult {
    let mut details = Vec::new();
    let mut failed = 0;
    for step in steps.iter().filter(|s| s.op != Op::Delete) {
        let refused = match registry.validate_config(&step.path, &step.bytes).await {
            Ok(()) => None,
            Err(ndsr::Error::Invalid { violations, .. }) => Some(violation_lines(&violations)),
            Err(ndsr::Error::Data { .. }) => registry
                .schema(&step.path)
                .await?
                .map(|_| vec!["(the whole value): not JSON, and the path has a schema".to_string()]),
            Err(e) => return Err(e.into()),
        };
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

/// `ndsr apply`.
pub async fn apply(global: &Global, args: ApplyArgs) -> CliResult<ExitCode> {
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
        for step in steps.iter().filter(|s| s.op != Op::Delete) {
            if tree.nodes.get(&step.path) != Some(&step.bytes) {
                return Err(CliError::new(
                    Exit::InvalidInput,
                    format!(
                        "{} was not made from {}: its value of {} is not the file's",
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
            let live = walk(registry, &tree.root, &args.tree.config_root).await?;
            let (steps, skipped) = plan(&tree, &live, args.prune);
            note_skipped(global, &skipped);
            (tree.root, steps)
        }
        (None, None) => return Err(CliError::new(Exit::InvalidInput, "apply needs a FILE or --plan PLAN")),
    };
    check_schemas(registry, &steps).await?;
    let mut done = Vec::new();
    let mut already = 0;
    for step in &steps {
        let live = registry.read_raw(&step.path).await?;
        let conflict = |current: Option<i32>| {
            let found =
                current.map_or_else(|| "does not exist".to_string(), |v| format!("is at version {v}"));
            let planned = match step.expected_version {
                -1 => "not to exist".to_string(),
                v => format!("at version {v}"),
            };
            CliError::new(
                Exit::VersionConflict,
                format!(
                    "{} changed since the plan: planned {planned}, it {found}; stopped before it ({} done); make a new plan",
                    step.path,
                    count(done.len(), "step")
                ),
            )
            .with_details(done.clone())
        };
        match step.op {
            Op::Create | Op::Update => {
                if let Some((bytes, stat)) = &live {
                    if *bytes == step.bytes {
                        already += 1;
                        continue;
                    }
                    if stat.ephemeral_owner != 0 {
                        return Err(CliError::new(
                            Exit::Conflict,
                            format!("{} is an ephemeral node: apply never touches one", step.path),
                        ));
                    }
                }
                let options =
                    PublishOptions { message: args.message.clone(), if_version: Some(step.expected_version) };
                match registry.apply_value(&step.path, &step.bytes, options).await {
                    Ok(release) => {
                        let what = if step.op == Op::Create { "created" } else { "updated" };
                        done.push(format!("{what} {} (version {})", step.path, release.version));
                    }
                    Err(ndsr::Error::VersionConflict { current, .. }) => return Err(conflict(current)),
                    Err(e) => return Err(e.into()),
                }
            }
            Op::Delete => {
                let Some((_, stat)) = live else {
                    already += 1;
                    continue;
                };
                if stat.version != step.expected_version {
                    return Err(conflict(Some(stat.version)));
                }
                if stat.ephemeral_owner != 0 || stat.num_children > 0 {
                    return Err(CliError::new(
                        Exit::Conflict,
                        format!(
                            "{} is ephemeral or has children now; not deleted ({} done); make a new plan",
                            step.path,
                            count(done.len(), "step")
                        ),
                    )
                    .with_details(done.clone()));
                }
                registry.unset(&step.path).await?;
                done.push(format!("deleted {}", step.path));
            }
        }
    }
    let mut lines = done.clone();
    let n = |w: &str| done.iter().filter(|l| l.starts_with(w)).count();
    lines.push(format!(
        "applied to {root}: {} created, {} updated, {} deleted, {} already done",
        n("created"),
        n("updated"),
        n("deleted"),
        already
    ));
    output::line(&lines.join("\n"))?;
    Ok(ExitCode::SUCCESS)
}
