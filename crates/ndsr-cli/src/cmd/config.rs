//! `ndsr config`: configuration releases (publish, history, diff,
//! rollback, schemas, validate) over the library's `release` API.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use ndsr::release::{Change, Entry, History, HistoryItem, PublishOptions, Release};
use ndsr::Registry;
use serde_json::{json, Value};

use crate::args::{
    ConfigArgs, ConfigCommand, ConfigOutput, DiffArgs, Global, HistoryArgs, PublishArgs, ReleaseArgs,
    RollbackArgs, SchemaCommand, SchemaSetArgs, ValidateArgs,
};
use crate::cmd::{builder, check_path};
use crate::error::{count, violation_lines, CliError, CliResult, Exit};
use crate::output;

mod canary;

/// Runs one `config` command.
pub async fn run(global: &Global, args: ConfigArgs) -> CliResult<ExitCode> {
    let path = match &args.command {
        ConfigCommand::Publish(a) => &a.path,
        ConfigCommand::History(a) => &a.path,
        ConfigCommand::Diff(a) => &a.path,
        ConfigCommand::Rollback(a) => &a.path,
        ConfigCommand::Schema(a) => match &a.command {
            SchemaCommand::Set(a) => &a.path,
            SchemaCommand::Get(a) | SchemaCommand::Rm(a) => &a.path,
        },
        ConfigCommand::Validate(a) => &a.path,
        ConfigCommand::Canary(a) => &a.path,
        ConfigCommand::Promote(a) => &a.path,
        ConfigCommand::Abort(a) | ConfigCommand::Status(a) => &a.path,
    };
    check_path(path)?;
    check_path(&args.config_root)
        .map_err(|e| CliError::new(Exit::InvalidInput, format!("--config-root: {}", e.message)))?;
    // Read the input before connecting: bad input fails fast.
    let input = match &args.command {
        ConfigCommand::Publish(a) => Some(publish_input(a)?),
        ConfigCommand::Schema(a) => match &a.command {
            SchemaCommand::Set(a) => Some(read_input(&a.file)?),
            _ => None,
        },
        ConfigCommand::Validate(a) => Some(read_input(&a.file)?),
        ConfigCommand::Canary(a) => Some(read_input(&a.file)?),
        _ => None,
    };
    let mut builder = builder(global, false)?.config_root(args.config_root.clone());
    if let Some(author) = &args.author {
        builder = builder.author(author.clone());
    }
    let registry = builder.build().await?;
    let input = input.unwrap_or_default();
    let result = match args.command {
        ConfigCommand::Publish(a) => publish(&registry, a, &input).await,
        ConfigCommand::History(a) => history(&registry, a).await,
        ConfigCommand::Diff(a) => diff(global, &registry, a).await,
        ConfigCommand::Rollback(a) => rollback(&registry, a).await,
        ConfigCommand::Schema(a) => match a.command {
            SchemaCommand::Set(a) => schema_set(global, &registry, a, &input).await,
            SchemaCommand::Get(a) => schema_get(&registry, &a.path).await,
            SchemaCommand::Rm(a) => schema_rm(&registry, &a.path).await,
        },
        ConfigCommand::Validate(a) => validate(&registry, a, &input).await,
        ConfigCommand::Canary(a) => canary::start(&registry, a, &input).await,
        ConfigCommand::Promote(a) => canary::promote(&registry, a).await,
        ConfigCommand::Abort(a) => canary::abort(&registry, a).await,
        ConfigCommand::Status(a) => canary::status(&registry, a).await,
    };
    registry.close().await;
    result
}

/// The bytes of `--data`, `--file` or the positional FILE (`-`: stdin).
fn publish_input(args: &PublishArgs) -> CliResult<Vec<u8>> {
    match (&args.data, &args.file, &args.input) {
        (Some(text), _, _) => Ok(text.as_bytes().to_vec()),
        (None, Some(file), _) | (None, None, Some(file)) => read_input(file),
        (None, None, None) => {
            Err(CliError::new(Exit::InvalidInput, "publish needs --data JSON, --file FILE or - for stdin"))
        }
    }
}

/// A file's exact bytes, or stdin's for `-`.
fn read_input(file: &Path) -> CliResult<Vec<u8>> {
    if file == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| CliError::new(Exit::InvalidInput, format!("cannot read stdin: {e}")))?;
        return Ok(bytes);
    }
    std::fs::read(file)
        .map_err(|e| CliError::new(Exit::InvalidInput, format!("cannot read {}: {e}", file.display())))
}

pub(crate) fn options(args: &ReleaseArgs) -> PublishOptions {
    PublishOptions { message: args.message.clone(), if_version: args.if_version }
}

/// Prints a release written: one line, or JSON.
pub(crate) fn print_release(release: &Release, rollback_of: Option<i32>, output: &ConfigOutput) -> CliResult {
    if output.is_json() {
        let mut view = json!({
            "path": release.path,
            "version": release.version,
            "previous_version": release.previous_version,
            "entry": release.entry,
            "sha256": release.sha256,
        });
        if let Some(to) = rollback_of {
            view["rollback_of"] = json!(to);
        }
        return output::line(&output::json_pretty(&view));
    }
    let what = match rollback_of {
        Some(to) => format!("rolled back to the value of version {to}"),
        None => "published".to_string(),
    };
    output::line(&format!(
        "version {} of {} {what}: entry {}, sha256 {}",
        release.version, release.path, release.entry, release.sha256
    ))
}

async fn publish(registry: &Registry, args: PublishArgs, value: &[u8]) -> CliResult<ExitCode> {
    let release = registry.publish(&args.path, value, options(&args.release)).await?;
    print_release(&release, None, &args.output)?;
    Ok(ExitCode::SUCCESS)
}

async fn rollback(registry: &Registry, args: RollbackArgs) -> CliResult<ExitCode> {
    let release = registry.rollback(&args.path, args.to, options(&args.release)).await?;
    print_release(&release, Some(args.to), &args.output)?;
    Ok(ExitCode::SUCCESS)
}

/// A release's value as JSON (a value that is not JSON, as a string of it).
fn value_of(entry: &Entry) -> Value {
    entry.json().unwrap_or_else(|| Value::String(String::from_utf8_lossy(&entry.value).into_owned()))
}

/// Each release's changes from the release before it (none for the first).
fn changes_by_release(history: &History) -> Vec<Option<Vec<Change>>> {
    let mut before: Option<&Entry> = None;
    history
        .items
        .iter()
        .map(|item| match item {
            HistoryItem::Release(entry) => {
                let changes = before.map(|b| ndsr::release::diff(&value_of(b), &value_of(entry)));
                before = Some(entry);
                changes
            }
            _ => None,
        })
        .collect()
}

async fn history(registry: &Registry, args: HistoryArgs) -> CliResult<ExitCode> {
    let history = registry.history(&args.path).await?;
    let changes = if args.diff { changes_by_release(&history) } else { vec![None; history.items.len()] };
    if args.output.is_json() {
        let items: Vec<Value> = history
            .items
            .iter()
            .zip(&changes)
            .map(|(item, changes)| {
                let mut view = serde_json::to_value(item).unwrap_or(Value::Null);
                if let Value::Object(map) = &mut view {
                    map.insert("line".into(), Value::String(history.describe(item)));
                    if let Some(changes) = changes {
                        map.insert("changes".into(), serde_json::to_value(changes).unwrap_or(Value::Null));
                    }
                }
                view
            })
            .collect();
        let view = json!({"path": history.path, "live_version": history.live_version, "items": items});
        output::line(&output::json_pretty(&view))?;
    }
    if history.items.is_empty() {
        return Err(CliError::new(
            Exit::NoNode,
            format!("{} has no history and no live node (publish it with `ndsr config publish`)", args.path),
        ));
    }
    if args.output.is_json() {
        return Ok(ExitCode::SUCCESS);
    }
    let mut lines = Vec::new();
    for (item, changes) in history.items.iter().zip(&changes) {
        lines.push(history.describe(item));
        match changes {
            Some(changes) if changes.is_empty() => {
                lines.push("    (the same value as the release before)".into())
            }
            Some(changes) => lines.extend(changes.iter().map(|c| format!("    {c}"))),
            None => {}
        }
    }
    output::line(&lines.join("\n"))?;
    Ok(ExitCode::SUCCESS)
}

async fn diff(global: &Global, registry: &Registry, args: DiffArgs) -> CliResult<ExitCode> {
    let from = match args.from {
        Some(from) => from,
        None => {
            // The newest release whose value is not the live one.
            let history = registry.history(&args.path).await?;
            let before = history.releases().filter(|e| !e.live).last().map(|e| e.version);
            before.ok_or_else(|| {
                CliError::new(
                    Exit::InvalidInput,
                    format!(
                        "{} has no release before its live value to compare with (its history holds {}); give the versions to compare",
                        args.path,
                        versions(&history.versions())
                    ),
                )
            })?
        }
    };
    let changes = registry.config_diff(&args.path, Some(from), args.to).await?;
    if args.output.is_json() {
        output::line(&output::json_pretty(&changes))?;
    } else if !changes.is_empty() {
        let lines: Vec<String> = changes.iter().map(ToString::to_string).collect();
        output::line(&lines.join("\n"))?;
    } else if !global.quiet {
        let to = args.to.map_or_else(|| "the live value".to_string(), |v| format!("version {v}"));
        eprintln!("ndsr: no change from version {from} to {to}");
    }
    Ok(ExitCode::SUCCESS)
}

fn versions(versions: &[i32]) -> String {
    if versions.is_empty() {
        return "no releases".into();
    }
    let shown: Vec<String> = versions.iter().map(i32::to_string).collect();
    format!("versions {}", shown.join(", "))
}

/// The input parsed as JSON, or exit 3 naming where it came from.
fn parse(bytes: &[u8], origin: &Path, what: &str) -> CliResult<Value> {
    serde_json::from_slice(bytes).map_err(|e| {
        let origin =
            if origin == Path::new("-") { "stdin".to_string() } else { origin.display().to_string() };
        CliError::new(Exit::InvalidInput, format!("{origin} is not JSON ({e}); {what}"))
    })
}

async fn schema_set(
    global: &Global,
    registry: &Registry,
    args: SchemaSetArgs,
    bytes: &[u8],
) -> CliResult<ExitCode> {
    let schema = parse(bytes, &args.file, "a schema is a JSON object")?;
    let change = registry.set_schema(&args.path, &schema, args.force).await?;
    if !change.forced_over.is_empty() && !global.quiet {
        eprintln!(
            "ndsr: set by --force: the live value of {} does not fit it ({}):",
            args.path,
            count(change.forced_over.len(), "violation")
        );
        for line in violation_lines(&change.forced_over) {
            eprintln!("  {line}");
        }
    }
    output::line(&format!("schema of {} set (schema version {})", args.path, change.version))?;
    Ok(ExitCode::SUCCESS)
}

async fn schema_get(registry: &Registry, path: &str) -> CliResult<ExitCode> {
    match registry.schema(path).await? {
        Some(info) => {
            output::line(&output::json_pretty(&info.schema))?;
            Ok(ExitCode::SUCCESS)
        }
        None => Err(CliError::new(Exit::NoNode, format!("{path} has no schema"))),
    }
}

async fn schema_rm(registry: &Registry, path: &str) -> CliResult<ExitCode> {
    let change = registry.remove_schema(path).await?;
    output::line(&format!("schema of {path} removed (schema version {})", change.version))?;
    Ok(ExitCode::SUCCESS)
}

async fn validate(registry: &Registry, args: ValidateArgs, bytes: &[u8]) -> CliResult<ExitCode> {
    let origin =
        if args.file == Path::new("-") { "stdin".to_string() } else { args.file.display().to_string() };
    let schema = registry.schema(&args.path).await?;
    match registry.validate_config(&args.path, bytes).await {
        Ok(()) => {
            let line = match schema {
                Some(info) => {
                    format!("{origin} fits the schema of {} (schema version {})", args.path, info.version)
                }
                None => format!("{} has no schema: {origin} is JSON, which is all it takes", args.path),
            };
            output::line(&line)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(ndsr::Error::Invalid { violations, .. }) => Err(CliError::new(
            Exit::Invalid,
            format!(
                "{origin} does not fit the schema of {} ({})",
                args.path,
                count(violations.len(), "violation")
            ),
        )
        .with_details(violation_lines(&violations))),
        Err(e) => Err(e.into()),
    }
}
