//! `ndsr get --instances`, `ndsr pick` and `ndsr register --as`: services
//! in any registry format (the library makes the announcements and the
//! selectors; this module reads the flags).

use std::collections::BTreeMap;
use std::process::ExitCode;

use ndsr::discovery::{AnnounceError, Announcement, Endpoint, Format, InstanceSpec, SelectorSpec, Strategy};
use ndsr_agent::views::listing_view;

use crate::args::{AnnounceFormat, GetArgs, GetFormat, Global, PickArgs, PickStrategy, RegisterArgs};
use crate::cmd::{check_path, connect};
use crate::error::{CliError, CliResult, Exit};
use crate::output;

/// `ndsr get --instances`.
pub async fn instances(global: &Global, args: &GetArgs) -> CliResult<ExitCode> {
    let registry = connect(global, false).await?;
    let listed = registry.instances(&args.path, args.as_format.map(Into::into)).await;
    let exists = registry.get(&args.path).await.map(|s| s.exists());
    registry.close().await;
    let listing = listed?;
    let view = listing_view(&listing);
    let text = match args.format {
        GetFormat::Json => output::json_pretty(&view),
        GetFormat::Yaml => output::yaml(&view),
        GetFormat::Dir => listing.instances.iter().map(|i| i.address()).collect::<Vec<_>>().join("\n"),
    };
    if !text.is_empty() {
        output::line(&text)?;
    }
    for bad in &listing.bad {
        if !global.quiet {
            eprintln!("ndsr: {}/{} is not an instance: {}", args.path, bad.key, bad.reason);
        }
    }
    if !exists.unwrap_or(false) && !args.allow_missing {
        return Err(CliError::new(
            Exit::NoNode,
            format!("no node at {} (--allow-missing to exit 0)", args.path),
        ));
    }
    Ok(ExitCode::SUCCESS)
}

fn key_value(text: &str, what: &str) -> CliResult<(String, String)> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(CliError::new(Exit::InvalidInput, format!("{what} `{text}` is not KEY=VALUE"))),
    }
}

/// `ndsr pick`.
pub async fn pick(global: &Global, args: PickArgs) -> CliResult<ExitCode> {
    check_path(&args.path)?;
    let strategy = match args.strategy {
        PickStrategy::Random => Strategy::Random,
        PickStrategy::RoundRobin => Strategy::RoundRobin,
        PickStrategy::Weighted => Strategy::Weighted,
    };
    let mut spec = SelectorSpec::new(strategy);
    spec.include_draining = args.include_draining;
    for label in &args.labels {
        let filter = SelectorSpec::parse_label(label)
            .map_err(|_| CliError::new(Exit::InvalidInput, format!("--label `{label}` is not KEY=VALUE")))?;
        spec.labels.push(filter);
    }
    if let Some(prefer) = &args.prefer {
        let zone = SelectorSpec::parse_prefer(prefer).map_err(|_| {
            CliError::new(Exit::InvalidInput, format!("--prefer `{prefer}` is not KEY=VALUE"))
        })?;
        spec.prefer = Some(zone);
    }
    let selector = spec.build();
    let registry = connect(global, false).await?;
    let listed = registry.instances(&args.path, args.as_format.map(Into::into)).await;
    registry.close().await;
    let listing = listed?;
    let picked = selector
        .pick(&listing.instances)
        .map_err(|none| CliError::new(Exit::NoInstance, format!("{}: {none}", args.path)))?;
    let address = match &args.endpoint {
        None => picked.address(),
        Some(name) => match picked.endpoints.get(name) {
            Some(Endpoint { host, port }) => format!("{host}:{port}"),
            None => {
                return Err(CliError::new(
                    Exit::NoInstance,
                    format!("{}: the picked instance {} has no endpoint `{name}`", args.path, picked.key),
                ))
            }
        },
    };
    output::line(&address)?;
    Ok(ExitCode::SUCCESS)
}

/// The announcement `register --as` describes.
pub fn announcement(args: &RegisterArgs, format: AnnounceFormat) -> CliResult<Announcement> {
    let format = Format::from(format);
    let invalid = |why: String| CliError::new(Exit::InvalidInput, format!("register --as {format}: {why}"));
    let mut endpoints = BTreeMap::new();
    for text in &args.endpoints {
        let (name, address) = key_value(text, "--endpoint")?;
        let parsed = InstanceSpec::parse_endpoint(&address).ok_or_else(|| {
            CliError::new(Exit::InvalidInput, format!("--endpoint `{text}` is not NAME=HOST:PORT"))
        })?;
        endpoints.insert(name, parsed);
    }
    let spec = InstanceSpec {
        host: args.host.clone().ok_or_else(|| invalid("--host is required".into()))?,
        port: args.port.ok_or_else(|| invalid("--port is required".into()))?,
        name: args.name.clone(),
        id: args.id.clone(),
        ssl_port: args.ssl_port,
        uri_spec: args.uri_spec.clone(),
        shard: args.shard,
        weight: args.weight,
        labels: args.labels.iter().map(|l| key_value(l, "--label")).collect::<CliResult<_>>()?,
        endpoints,
        path_encoding: args.path_encoding,
    };
    Announcement::new(format, &args.path, spec).map_err(|e| match e {
        AnnounceError::NameMissing { what, .. } => invalid(format!("--name ({what}) is required")),
        other => invalid(other.to_string()),
    })
}
