//! A JSON-aware diff: what changed, key by key, with the old and new
//! values, rather than a text diff of serialized JSON.

use serde::Serialize;
use serde_json::Value;

/// What happened at one place of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// There in the new value only.
    Added,
    /// There in the old value only.
    Removed,
    /// There in both, different.
    Changed,
}

/// One change between two values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// Where, as a JSON pointer (RFC 6901; `""` is the whole value).
    pub pointer: String,
    /// Added, removed or changed.
    pub kind: ChangeKind,
    /// The old value there (`None` when added).
    pub old: Option<Value>,
    /// The new value there (`None` when removed).
    pub new: Option<Value>,
}

impl std::fmt::Display for Change {
    /// `~ /db/pool: 10 -> 20`, `+ /x: true`, `- /y: "v"`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pointer = if self.pointer.is_empty() { "(the whole value)" } else { &self.pointer };
        let show = |v: &Option<Value>| v.as_ref().map(Value::to_string).unwrap_or_default();
        match self.kind {
            ChangeKind::Added => write!(f, "+ {pointer}: {}", show(&self.new)),
            ChangeKind::Removed => write!(f, "- {pointer}: {}", show(&self.old)),
            ChangeKind::Changed => write!(f, "~ {pointer}: {} -> {}", show(&self.old), show(&self.new)),
        }
    }
}

/// The changes from `old` to `new`: objects key by key (in the old
/// value's order, then the keys only the new one has), arrays element by
/// element over their common length and then what one has beyond it,
/// anything else as one change where the two differ. Numbers are compared
/// as written (`1.0` and `1` differ), as their bytes do.
pub fn diff(old: &Value, new: &Value) -> Vec<Change> {
    let mut changes = Vec::new();
    walk(&mut String::new(), old, new, &mut changes);
    changes
}

fn walk(pointer: &mut String, old: &Value, new: &Value, out: &mut Vec<Change>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, va) in a {
                let len = push(pointer, key);
                match b.get(key) {
                    Some(vb) => walk(pointer, va, vb, out),
                    None => out.push(change(pointer, ChangeKind::Removed, Some(va), None)),
                }
                pointer.truncate(len);
            }
            for (key, vb) in b.iter().filter(|(k, _)| !a.contains_key(*k)) {
                let len = push(pointer, key);
                out.push(change(pointer, ChangeKind::Added, None, Some(vb)));
                pointer.truncate(len);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for i in 0..a.len().max(b.len()) {
                let len = push(pointer, &i.to_string());
                match (a.get(i), b.get(i)) {
                    (Some(va), Some(vb)) => walk(pointer, va, vb, out),
                    (Some(va), None) => out.push(change(pointer, ChangeKind::Removed, Some(va), None)),
                    (None, Some(vb)) => out.push(change(pointer, ChangeKind::Added, None, Some(vb))),
                    (None, None) => {}
                }
                pointer.truncate(len);
            }
        }
        (a, b) if a != b => out.push(change(pointer, ChangeKind::Changed, Some(a), Some(b))),
        _ => {}
    }
}

/// Appends `/key` (escaped per RFC 6901) and returns the length before.
fn push(pointer: &mut String, key: &str) -> usize {
    let len = pointer.len();
    pointer.push('/');
    pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
    len
}

fn change(pointer: &str, kind: ChangeKind, old: Option<&Value>, new: Option<&Value>) -> Change {
    Change { pointer: pointer.to_string(), kind, old: old.cloned(), new: new.cloned() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_are_compared_key_by_key_with_old_and_new_values() {
        let old = json!({"db": {"pool": 10, "host": "a"}, "gone": true, "same": [1, 2]});
        let new = json!({"db": {"pool": 20, "host": "a"}, "same": [1, 2], "new/key": "x"});
        let changes = diff(&old, &new);
        let shown: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["~ /db/pool: 10 -> 20", "- /gone: true", "+ /new~1key: \"x\""]);
    }

    #[test]
    fn arrays_are_compared_by_position_then_their_tails() {
        let changes = diff(&json!([1, 2, 3]), &json!([1, 5]));
        let shown: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["~ /1: 2 -> 5", "- /2: 3"]);
        assert!(diff(&json!({"a": [1]}), &json!({"a": [1]})).is_empty());
    }

    #[test]
    fn a_change_of_type_is_one_change_of_the_whole_place() {
        let changes = diff(&json!({"a": {"b": 1}}), &json!({"a": [1]}));
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].pointer, "/a");
        assert_eq!(changes[0].kind, ChangeKind::Changed);
        assert_eq!(diff(&json!(1), &json!("1"))[0].to_string(), "~ (the whole value): 1 -> \"1\"");
    }

    #[test]
    fn numbers_compare_as_written() {
        // The workspace's serde_json keeps numbers' text (arbitrary precision).
        let a: Value = serde_json::from_str("{\"n\": 1.0}").unwrap();
        let b: Value = serde_json::from_str("{\"n\": 1}").unwrap();
        assert_eq!(diff(&a, &b).len(), 1);
        let big: Value = serde_json::from_str("{\"n\": 12345678901234567890123}").unwrap();
        assert!(diff(&big, &big.clone()).is_empty());
    }
}
