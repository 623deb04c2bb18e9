//! Python values to and from the registry's JSON data.
//!
//! Numbers keep their exact text both ways (an integer beyond 64 bits stays
//! an exact Python `int`); data is refused with `TypeError` where the
//! original refuses it (anything but None, a str or a mapping).

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyMapping, PyString, PyTuple};
use serde_json::{Map, Number, Value};

/// What a caller asks to store: None, a str, or a mapping.
pub(crate) fn data_from_py(obj: &Bound<'_, PyAny>) -> PyResult<ndsr::Data> {
    if obj.is_none() {
        return Ok(ndsr::Data::None);
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(ndsr::Data::String(s.to_cow()?.into_owned()));
    }
    if obj.cast::<PyDict>().is_ok() || obj.cast::<PyMapping>().is_ok() {
        return match value_from_py(obj)? {
            Value::Object(map) => Ok(ndsr::Data::Object(map)),
            _ => Err(PyTypeError::new_err("a mapping did not convert to an object")),
        };
    }
    Err(PyTypeError::new_err(format!(
        "data must be None, a str or a dict (the original refuses other data too), not {}",
        obj.get_type().name()?
    )))
}

/// A JSON key the way `json.dumps` makes one.
fn key_from_py(key: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(s) = key.cast::<PyString>() {
        return Ok(s.to_cow()?.into_owned());
    }
    if key.is_none() {
        return Ok("null".into());
    }
    if let Ok(b) = key.cast::<PyBool>() {
        return Ok(if b.is_true() { "true" } else { "false" }.into());
    }
    if key.cast::<PyInt>().is_ok() || key.cast::<PyFloat>().is_ok() {
        return Ok(key.str()?.to_cow()?.into_owned());
    }
    Err(PyTypeError::new_err(format!(
        "keys must be str, int, float, bool or None, not {}",
        key.get_type().name()?
    )))
}

/// Any JSON-like Python value.
pub(crate) fn value_from_py(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.cast::<PyInt>().is_ok() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::from(u));
        }
        let text = obj.str()?.to_cow()?.into_owned();
        return serde_json::from_str::<Number>(&text)
            .map(Value::Number)
            .map_err(|e| PyValueError::new_err(format!("integer {text} cannot be stored: {e}")));
    }
    if obj.cast::<PyFloat>().is_ok() {
        let f: f64 = obj.extract()?;
        // repr() is the shortest text that reads back as the same float.
        let text = obj.repr()?.to_cow()?.into_owned();
        return match Number::from_f64(f) {
            Some(_) => serde_json::from_str::<Number>(&text)
                .map(Value::Number)
                .map_err(|e| PyValueError::new_err(format!("float {text} cannot be stored: {e}"))),
            None => Err(PyValueError::new_err(format!(
                "{text} is not valid JSON (NaN and infinities cannot be stored)"
            ))),
        };
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.to_cow()?.into_owned()));
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        let mut map = Map::new();
        for (k, v) in dict.iter() {
            map.insert(key_from_py(&k)?, value_from_py(&v)?);
        }
        return Ok(Value::Object(map));
    }
    if let Ok(mapping) = obj.cast::<PyMapping>() {
        let mut map = Map::new();
        for item in mapping.items()?.iter() {
            let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
            map.insert(key_from_py(&k)?, value_from_py(&v)?);
        }
        return Ok(Value::Object(map));
    }
    if let Ok(list) = obj.cast::<PyList>() {
        return list.iter().map(|v| value_from_py(&v)).collect::<PyResult<Vec<_>>>().map(Value::Array);
    }
    if let Ok(tuple) = obj.cast::<PyTuple>() {
        return tuple.iter().map(|v| value_from_py(&v)).collect::<PyResult<Vec<_>>>().map(Value::Array);
    }
    Err(PyTypeError::new_err(format!("Object of type {} is not JSON serializable", obj.get_type().name()?)))
}

/// A JSON value as a new Python object (dicts keep their key order).
pub(crate) fn value_to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            let text = n.to_string();
            if let Some(i) = n.as_i64().filter(|i| i.to_string() == text) {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64().filter(|u| u.to_string() == text) {
                u.into_pyobject(py)?.into_any()
            } else if !text.contains(['.', 'e', 'E']) {
                // An integer beyond 64 bits: Python's int reads it exactly.
                py.get_type::<PyInt>().call1((text,))?
            } else {
                py.get_type::<PyFloat>().call1((text,))?
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(value_to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, value_to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}
