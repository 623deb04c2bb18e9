//! Writing results to stdout: a closed pipe ends the program quietly.

use std::io::Write;

use serde::Serialize;

use crate::error::CliResult;

/// Writes `text` (and a newline) to stdout. A closed pipe (`ndsr get | head`)
/// exits 0 at once, as ripgrep does.
pub fn line(text: &str) -> CliResult {
    let mut out = std::io::stdout().lock();
    let written = writeln!(out, "{text}").and_then(|()| out.flush());
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => other.map_err(Into::into),
    }
}

/// Compact JSON of `value`.
pub fn json_line<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// Pretty JSON of `value`.
pub fn json_pretty<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// YAML of `value`.
pub fn yaml<T: Serialize>(value: &T) -> String {
    let text = serde_yaml_ng::to_string(value).unwrap_or_else(|e| format!("error: {e}\n"));
    text.trim_end().to_string()
}
