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

/// Writes `bytes` to stdout as they are; a closed pipe exits 0 at once.
pub fn raw(bytes: &[u8]) -> CliResult {
    let mut out = std::io::stdout().lock();
    let written = out.write_all(bytes).and_then(|()| out.flush());
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
///
/// Goes through a JSON value first: node data keeps numbers as their exact
/// text (serde_json's `arbitrary_precision`), which only serde_json's own
/// serializer understands. A number YAML cannot hold exactly (an integer
/// beyond 64 bits, a decimal that is not an exact `f64` text) is written as
/// a string of its exact digits rather than rounded.
pub fn yaml<T: Serialize>(value: &T) -> String {
    let text = serde_json::to_value(value)
        .map_err(|e| e.to_string())
        .and_then(|v| serde_yaml_ng::to_string(&yaml_value(v)).map_err(|e| e.to_string()))
        .unwrap_or_else(|e| format!("error: {e}\n"));
    text.trim_end().to_string()
}

fn yaml_value(v: serde_json::Value) -> serde_yaml_ng::Value {
    use serde_json::Value as J;
    use serde_yaml_ng::Value as Y;
    match v {
        J::Null => Y::Null,
        J::Bool(b) => Y::Bool(b),
        J::Number(n) => {
            let text = n.to_string();
            if let Some(i) = n.as_i64().filter(|i| i.to_string() == text) {
                Y::Number(i.into())
            } else if let Some(u) = n.as_u64().filter(|u| u.to_string() == text) {
                Y::Number(u.into())
            } else if let Some(f) = n.as_f64().filter(|f| f.is_finite() && f.to_string() == text) {
                Y::Number(f.into())
            } else {
                Y::String(text)
            }
        }
        J::String(s) => Y::String(s),
        J::Array(items) => Y::Sequence(items.into_iter().map(yaml_value).collect()),
        J::Object(map) => Y::Mapping(map.into_iter().map(|(k, v)| (Y::String(k), yaml_value(v))).collect()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn yaml_keeps_every_number_exact() {
        let v: serde_json::Value = serde_json::from_str(
            r#"{"small":3,"neg":-4,"big":12345678901234567890123,"f":1.5,"long":0.10000000000000000001}"#,
        )
        .unwrap();
        let text = super::yaml(&v);
        assert!(text.contains("small: 3"), "{text}");
        assert!(text.contains("neg: -4"), "{text}");
        assert!(text.contains("big: '12345678901234567890123'"), "{text}");
        assert!(text.contains("f: 1.5"), "{text}");
        assert!(text.contains("long: '0.10000000000000000001'"), "{text}");
        assert!(!text.contains("serde_json"), "{text}");
    }
}
