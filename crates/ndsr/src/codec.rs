//! The original's data format, both directions.
//!
//! Written: compact JSON of the user's object merged over the defaults
//! `{"pid": <process id>, "created": "YYYY-MM-DD HH:MM:SS"}` (local time,
//! user keys win); a plain string `s` as `{"string_value": s}` merged the same
//! way; no data as just the defaults. Read: empty bytes are no data; other
//! bytes are stripped of whitespace and decoded as UTF-8 (lossily); nothing
//! left is `{}`; text from `{` to `}` that parses as a JSON object is that
//! object; anything else is `{"string_value": text}`. Decoding never fails.

use serde_json::{Map, Value};

/// A JSON object: the decoded data of a node.
pub type Object = Map<String, Value>;

/// What a caller asks to store in a node.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Data {
    /// No user data: only the defaults (`pid`, `created`).
    #[default]
    None,
    /// A plain string, stored as `{"string_value": ...}`.
    String(String),
    /// A JSON object, merged over the defaults.
    Object(Object),
}

impl Data {
    /// Serializes any `serde` value: an object becomes [`Data::Object`], a
    /// string [`Data::String`], null [`Data::None`]; anything else (a number,
    /// an array) is stored as its JSON text in `string_value`.
    ///
    /// # Errors
    /// serde_json's error if the value cannot be serialized.
    ///
    /// # Example
    ///
    /// ```
    /// #[derive(serde::Serialize)]
    /// struct Web { port: u16 }
    /// let data = ndsr::Data::from_serialize(&Web { port: 80 }).unwrap();
    /// assert!(matches!(data, ndsr::Data::Object(_)));
    /// ```
    pub fn from_serialize<T: serde::Serialize + ?Sized>(value: &T) -> Result<Data, serde_json::Error> {
        Ok(Data::from(serde_json::to_value(value)?))
    }
}

impl From<&str> for Data {
    fn from(s: &str) -> Data {
        Data::String(s.to_string())
    }
}

impl From<String> for Data {
    fn from(s: String) -> Data {
        Data::String(s)
    }
}

impl From<Object> for Data {
    fn from(o: Object) -> Data {
        Data::Object(o)
    }
}

impl From<Value> for Data {
    fn from(v: Value) -> Data {
        match v {
            Value::Null => Data::None,
            Value::String(s) => Data::String(s),
            Value::Object(o) => Data::Object(o),
            other => Data::String(other.to_string()),
        }
    }
}

impl<T: Into<Data>> From<Option<T>> for Data {
    fn from(v: Option<T>) -> Data {
        v.map_or(Data::None, Into::into)
    }
}

/// Encodes `data` the original's way, with this process's pid and the
/// local time now.
pub fn encode(data: &Data) -> Vec<u8> {
    let created = chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string();
    encode_with(data, std::process::id(), &created)
}

/// Encodes with explicit defaults (for tests and reproducible output).
pub fn encode_with(data: &Data, pid: u32, created: &str) -> Vec<u8> {
    let mut object = Object::new();
    object.insert("pid".into(), Value::from(pid));
    object.insert("created".into(), Value::from(created));
    match data {
        Data::None => {}
        Data::String(s) => {
            object.insert("string_value".into(), Value::from(s.as_str()));
        }
        Data::Object(user) => object.extend(user.iter().map(|(k, v)| (k.clone(), v.clone()))),
    }
    // A map of strings to JSON values always serializes.
    serde_json::to_vec(&Value::Object(object)).unwrap_or_default()
}

/// Decodes node bytes by the original's rules; never fails.
pub fn decode(bytes: &[u8]) -> Option<Object> {
    if bytes.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.is_empty() {
        // Whitespace only: an empty object, as the original decodes it.
        return Some(Object::new());
    }
    if text.starts_with('{') && text.ends_with('}') {
        if let Ok(Value::Object(object)) = serde_json::from_str::<Value>(text) {
            return Some(object);
        }
    }
    let mut object = Object::new();
    object.insert("string_value".into(), Value::from(text));
    Some(object)
}

/// The user's part of decoded data: everything but `pid` and `created`.
/// Used to tell whether a node holds what a registration asked for,
/// whoever wrote it and whenever.
pub(crate) fn user_part(object: &Option<Object>) -> Object {
    let mut user = object.clone().unwrap_or_default();
    user.shift_remove("pid");
    user.shift_remove("created");
    user
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn obj(v: Value) -> Object {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn encodes_like_the_original() {
        let data = Data::Object(obj(json!({"type": "apache"})));
        let bytes = encode_with(&data, 5128, "2026-11-24 01:13:11");
        assert_eq!(bytes, br#"{"pid":5128,"created":"2026-11-24 01:13:11","type":"apache"}"#);
        assert_eq!(encode_with(&Data::None, 1, "t"), br#"{"pid":1,"created":"t"}"#);
        assert_eq!(encode_with(&"s".into(), 1, "t"), br#"{"pid":1,"created":"t","string_value":"s"}"#);
    }

    #[test]
    fn user_keys_win() {
        let data = Data::Object(obj(json!({"pid": "mine", "x": 1})));
        assert_eq!(encode_with(&data, 7, "t"), br#"{"pid":"mine","created":"t","x":1}"#);
    }

    #[test]
    fn decodes_like_the_original() {
        assert_eq!(decode(b""), None);
        assert_eq!(decode(b"   "), Some(Object::new()), "whitespace only is {{}} as in the original");
        assert_eq!(decode(b"\n"), Some(Object::new()));
        assert_eq!(decode(b"hello\n"), Some(obj(json!({"string_value": "hello"}))));
        assert_eq!(decode(b"[1,2,3]"), Some(obj(json!({"string_value": "[1,2,3]"}))));
        assert_eq!(decode(b" {\"a\": 1} "), Some(obj(json!({"a": 1}))));
        assert_eq!(decode(b"{not json}"), Some(obj(json!({"string_value": "{not json}"}))));
        assert_eq!(decode(b"foobar"), Some(obj(json!({"string_value": "foobar"}))));
        assert_eq!(decode(b"\xff\xfe"), Some(obj(json!({"string_value": "\u{fffd}\u{fffd}"}))));
    }

    #[test]
    fn serialize_maps_values() {
        assert_eq!(Data::from(json!(null)), Data::None);
        assert_eq!(Data::from(json!(3)), Data::String("3".into()));
        assert_eq!(Data::from(None::<&str>), Data::None);
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn strings_round_trip(s in "\\PC{0,30}") {
            let back = decode(&encode_with(&Data::String(s.clone()), 1, "t")).unwrap();
            prop_assert_eq!(back.get("string_value"), Some(&Value::from(s)));
        }
    }
}
