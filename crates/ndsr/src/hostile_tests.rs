//! Hostile input, by property: whatever ZooKeeper, a cache file or a
//! caller hands over, nothing panics and every refusal says what is wrong.
//!
//! CI runs proptest's default case count; the long form is
//! `PROPTEST_CASES=10000 cargo test -p ndsr --lib hostile` (issue 14).

use std::time::Duration;

use proptest::prelude::*;
use serde_json::Value;

use crate::codec::{decode, Object};
use crate::discovery::{self, Format};

/// Arbitrary JSON, nested a few levels, with numbers of any size.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "[0-9]{1,400}".prop_map(|digits| serde_json::from_str(&digits).unwrap_or(Value::Null)),
        "\\PC{0,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,12}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Objects shaped like the formats' instances, with any values in them.
fn instance_like() -> impl Strategy<Value = Object> {
    let keys = prop::sample::select(vec![
        "name",
        "id",
        "address",
        "port",
        "sslPort",
        "payload",
        "registrationTimeUTC",
        "serviceType",
        "uriSpec",
        "enabled",
        "serviceEndpoint",
        "additionalEndpoints",
        "status",
        "shard",
        "host",
        "weight",
        "labels",
        "metadata",
        "pid",
        "created",
        "zone",
    ]);
    prop::collection::vec((keys, json()), 0..10)
        .prop_map(|pairs| pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn formats() -> impl Strategy<Value = Format> {
    prop::sample::select(vec![Format::Curator, Format::ServerSet, Format::Nerve, Format::Nd])
}

proptest! {
    #[test]
    fn node_bytes_always_decode(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let decoded = decode(&bytes);
        prop_assert_eq!(decoded.is_none(), bytes.is_empty());
    }

    #[test]
    fn json_objects_round_trip_and_mangled_ones_still_decode(value in json(), cut in any::<prop::sample::Index>(), junk in any::<u8>()) {
        let object: Object = match value {
            Value::Object(object) => object,
            other => [("v".to_string(), other)].into_iter().collect(),
        };
        let bytes = serde_json::to_vec(&object).unwrap();
        prop_assert_eq!(decode(&bytes), Some(object));
        // Cut short, or with a byte that is not UTF-8 in the middle.
        let mut mangled = bytes[..cut.index(bytes.len())].to_vec();
        let _ = decode(&mangled);
        mangled.push(0x80 | junk);
        mangled.extend_from_slice(&bytes[cut.index(bytes.len())..]);
        prop_assert!(decode(&mangled).is_some());
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow(depth in 0usize..20_000) {
        let text = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        let decoded = decode(text.as_bytes());
        prop_assert!(decoded.is_some());
    }

    #[test]
    fn any_child_of_any_format_decodes_or_says_why(format in formats(), key in "\\PC{0,30}", data in instance_like()) {
        match discovery::decode(format, &key, &data) {
            Ok(_) => {}
            Err(why) => prop_assert!(!why.is_empty()),
        }
        // Whatever the children hold, detection and a whole listing decode.
        let _ = discovery::detect([(key.as_str(), &data)]);
    }

    #[test]
    fn any_node_bytes_as_a_child_decode_or_say_why(format in formats(), bytes in prop::collection::vec(any::<u8>(), 1..512)) {
        let data = decode(&bytes).unwrap_or_default();
        if let Err(why) = discovery::decode(format, "member_0000000001", &data) {
            prop_assert!(!why.is_empty());
        }
    }

    #[test]
    fn any_cache_file_is_read_or_refused_with_a_reason(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        std::fs::write(&path, &bytes).unwrap();
        if let Err(why) = crate::cachefile::read(&path, Duration::from_secs(3600)) {
            prop_assert!(!why.is_empty());
        }
    }

    #[test]
    fn a_cache_file_cut_short_or_of_another_version_is_refused(cut in any::<prop::sample::Index>(), version in 2u32..1000) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        let entry = serde_json::json!({"data": {"a": 1}, "stat": null, "children": ["x"], "saved_at_ms": 1});
        let whole = serde_json::json!({"format": crate::cachefile::FORMAT, "version": crate::cachefile::VERSION, "entries": {"/a": entry}});
        let bytes = serde_json::to_vec(&whole).unwrap();
        let cut = cut.index(bytes.len());
        std::fs::write(&path, &bytes[..cut]).unwrap();
        prop_assert!(crate::cachefile::read(&path, Duration::MAX).is_err(), "cut at {}", cut);
        let mut other = whole.clone();
        other["version"] = version.into();
        std::fs::write(&path, serde_json::to_vec(&other).unwrap()).unwrap();
        let refused = crate::cachefile::read(&path, Duration::MAX).err().unwrap_or_default();
        prop_assert!(refused.contains("version"), "{}", refused);
        std::fs::write(&path, br#"{"some": "other program's file"}"#).unwrap();
        prop_assert!(crate::cachefile::read(&path, Duration::MAX).is_err());
    }
}
