//! JSON Schemas (draft 2020-12, by the `jsonschema` crate): compiling a
//! stored schema once per change, and listing every violation of a value.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::Violation;
use crate::{Error, Result};

/// Compiled schemas by configuration path, each with the zxid of the
/// schema node's write it was compiled from (unique to that write, even
/// across a re-creation), so a schema is compiled once per change.
#[derive(Default)]
pub(crate) struct Schemas {
    compiled: Mutex<HashMap<String, (i64, Arc<jsonschema::Validator>)>>,
}

impl Schemas {
    /// The validator of `schema` (the schema node's bytes, written at
    /// `mzxid`) for `path`; `None` for an empty node (no schema).
    pub(crate) fn get(
        &self,
        path: &str,
        bytes: &[u8],
        mzxid: i64,
    ) -> Result<Option<Arc<jsonschema::Validator>>> {
        if bytes.is_empty() {
            return Ok(None);
        }
        let mut compiled = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, validator)) = compiled.get(path) {
            if *at == mzxid {
                return Ok(Some(validator.clone()));
            }
        }
        let schema: Value = serde_json::from_slice(bytes).map_err(|e| Error::SchemaInvalid {
            path: path.to_string(),
            reason: format!("the stored schema is not JSON ({e})"),
        })?;
        let validator = Arc::new(compile(path, &schema)?);
        compiled.insert(path.to_string(), (mzxid, validator.clone()));
        Ok(Some(validator))
    }
}

/// Compiles `schema` as draft 2020-12 (checked against the meta-schema).
/// A `$ref` to another document is refused: nothing is fetched.
pub(crate) fn compile(path: &str, schema: &Value) -> Result<jsonschema::Validator> {
    let invalid = |reason: String| Error::SchemaInvalid { path: path.to_string(), reason };
    if !schema.is_object() && !schema.is_boolean() {
        return Err(invalid("a schema is a JSON object (or true or false)".to_string()));
    }
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(schema)
        .map_err(|e| invalid(e.to_string()))
}

/// Every violation of `value` against `validator`, by JSON pointer.
pub(crate) fn violations(validator: &jsonschema::Validator, value: &Value) -> Vec<Violation> {
    validator
        .iter_errors(value)
        .map(|e| Violation { pointer: e.instance_path().as_str().to_string(), message: e.to_string() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {"pool": {"type": "integer", "minimum": 1}, "host": {"type": "string"}},
            "required": ["pool"],
        })
    }

    #[test]
    fn every_violation_is_listed_by_pointer() {
        let v = compile("/c", &schema()).unwrap();
        let found = violations(&v, &json!({"pool": 0, "host": 5}));
        let mut pointers: Vec<&str> = found.iter().map(|v| v.pointer.as_str()).collect();
        pointers.sort();
        assert_eq!(pointers, ["/host", "/pool"]);
        assert!(violations(&v, &json!({"pool": 3})).is_empty());
        let missing = violations(&v, &json!({}));
        assert_eq!(missing.len(), 1);
        assert!(missing[0].message.contains("pool"), "{missing:?}");
    }

    #[test]
    fn a_schema_that_is_not_a_schema_is_refused_with_why() {
        for bad in [json!({"type": "integr"}), json!({"minimum": "ten"}), json!(5)] {
            match compile("/c", &bad) {
                Err(Error::SchemaInvalid { path, reason }) => {
                    assert_eq!(path, "/c");
                    assert!(!reason.is_empty());
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_remote_ref_is_refused_not_fetched() {
        let remote = json!({"$ref": "http://127.0.0.1:9/schema.json"});
        assert!(matches!(compile("/c", &remote), Err(Error::SchemaInvalid { .. })));
    }

    #[test]
    fn a_schema_is_compiled_once_per_write() {
        let schemas = Schemas::default();
        let bytes = serde_json::to_vec(&schema()).unwrap();
        let a = schemas.get("/c", &bytes, 7).unwrap().unwrap();
        let b = schemas.get("/c", &bytes, 7).unwrap().unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let c = schemas.get("/c", &bytes, 8).unwrap().unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(schemas.get("/c", b"", 9).unwrap().is_none());
    }
}
