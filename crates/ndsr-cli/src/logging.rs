//! Logs on stderr: the verbosity of -q/-v, as text or as JSON lines.

use clap::ValueEnum;

use crate::args::Global;

/// How logs are written (`--log-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, fields, spans),
    /// for a log collector.
    Json,
}

/// Installs the logger for `global`'s -q/-v (RUST_LOG with -v) and
/// --log-format. Every command's logs go through it, the agent's too.
pub fn init(global: &Global) {
    let default = match (global.quiet, global.verbose) {
        (true, _) => "error",
        // The client's own reconnect warnings are noise here: `watch`
        // reports connection news in plain words.
        (false, 0) => "warn,zookeeper_client=error",
        (false, 1) => "ndsr=info,warn",
        (false, 2) => "ndsr=debug,info",
        _ => "trace",
    };
    let filter = if global.verbose > 0 {
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into())
    } else {
        default.into()
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match global.log_format {
        LogFormat::Text => builder.with_ansi(colours_on_stderr()).try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}

/// Colours only for a person: stderr is a terminal and `NO_COLOR` is unset
/// or empty (<https://no-color.org>).
fn colours_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}
