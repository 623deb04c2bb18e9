//! Conversions of discovery listings and ACLs between Python and Rust,
//! for the `Registry` pyclass.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::value_to_py;

/// A format name (`None`: detect).
pub(crate) fn format_of(format: Option<&str>) -> PyResult<Option<ndsr::discovery::Format>> {
    format.map(|f| f.parse().map_err(PyValueError::new_err)).transpose()
}

/// An instance as a Python dict.
pub(crate) fn instance_to_py<'py>(
    py: Python<'py>,
    i: &ndsr::discovery::Instance,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("key", &i.key)?;
    d.set_item("format", i.format.name())?;
    d.set_item("id", &i.id)?;
    d.set_item("host", &i.host)?;
    d.set_item("port", i.port)?;
    d.set_item("address", i.address())?;
    d.set_item("ssl_port", i.ssl_port)?;
    d.set_item("serving", i.serving)?;
    d.set_item("weight", i.weight)?;
    d.set_item("shard", i.shard)?;
    d.set_item("labels", i.labels.clone())?;
    let endpoints: std::collections::BTreeMap<&String, (String, u16)> =
        i.endpoints.iter().map(|(k, e)| (k, (e.host.clone(), e.port))).collect();
    d.set_item("endpoints", endpoints)?;
    d.set_item("data", value_to_py(py, &serde_json::Value::Object(i.data.clone()))?)?;
    Ok(d)
}

/// A listing as a Python dict.
pub(crate) fn listing_to_py<'py>(
    py: Python<'py>,
    l: &ndsr::discovery::Instances,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("path", &l.path)?;
    d.set_item("format", l.format.map(|f| f.name()))?;
    d.set_item("stale", l.stale)?;
    let instances = l.instances.iter().map(|i| instance_to_py(py, i)).collect::<PyResult<Vec<_>>>()?;
    d.set_item("instances", instances)?;
    let bad: Vec<(&str, &str)> = l.bad.iter().map(|b| (b.key.as_str(), b.reason.as_str())).collect();
    d.set_item("bad", bad)?;
    Ok(d)
}

/// ACL entries given as `(perms, scheme, id)`, perms as ZooKeeper's bits
/// (READ 1, WRITE 2, CREATE 4, DELETE 8, ADMIN 16).
pub(crate) fn acl_of(entries: Vec<(u32, String, String)>) -> PyResult<Vec<ndsr::Acl>> {
    use ndsr::Permission as P;
    if entries.is_empty() {
        return Err(PyValueError::new_err("acl: an empty ACL would make nodes nobody can use"));
    }
    entries
        .into_iter()
        .map(|(bits, scheme, id)| {
            if bits == 0 || bits > 31 {
                return Err(PyValueError::new_err(format!(
                    "acl: permissions {bits} for {scheme}:{id} are not a combination of READ 1, WRITE 2, CREATE 4, DELETE 8, ADMIN 16"
                )));
            }
            let perms = [(1, P::READ), (2, P::WRITE), (4, P::CREATE), (8, P::DELETE), (16, P::ADMIN)]
                .into_iter()
                .filter(|(bit, _)| bits & bit != 0)
                .fold(P::NONE, |all, (_, p)| all | p);
            Ok(ndsr::Acl::new(perms, ndsr::AuthId::new(&scheme, &id)))
        })
        .collect()
}
