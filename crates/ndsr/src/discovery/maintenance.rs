//! Marking an instance not serving in its own format, keeping every other
//! field: Curator `enabled: false` (written only when false, as Curator
//! does), ServerSet `status: STOPPING`, nd a `maintenance` field (`true`
//! or the reason). Nerve has no such field: its instances withdraw
//! instead. What the readers then show is [`Instance::serving`] false,
//! which selectors skip unless told to
//! [`include_draining`](super::Selector::include_draining).

use serde_json::Value;

use super::{looks_like, Format};
use crate::path::validate_path;
use crate::{Error, Object, Registry};

/// The nd format's field that takes an instance out of rotation: `true`
/// or a non-empty reason (`false`, `null`, `""` or absent: serving).
pub const ND_MAINTENANCE: &str = "maintenance";

/// Why an instance cannot be marked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MarkError {
    /// The format has no field that says "not serving".
    #[error("a {0} instance cannot be marked not serving (it withdraws instead)")]
    Unmarkable(Format),
    /// The node's data is not a JSON object.
    #[error("{path}: the node's data is not a JSON object, so no field can mark it")]
    NotAnObject {
        /// The node.
        path: String,
    },
    /// The node says no format (neither its name nor its data).
    #[error("{path}: not an instance of a known format (curator, serverset, nerve or nd)")]
    NotAnInstance {
        /// The node.
        path: String,
    },
    /// No node at the path.
    #[error("{path}: no such node")]
    NoNode {
        /// The node.
        path: String,
    },
    /// The node kept changing while it was being marked.
    #[error("{path}: the node changed while it was being marked ({attempts} attempts)")]
    Contention {
        /// The node.
        path: String,
        /// How many compare-and-set writes were tried.
        attempts: u32,
    },
    /// The registry's error (connection, authorization, ...).
    #[error(transparent)]
    Registry(#[from] Error),
}

/// Whether nd data says the instance is in maintenance.
pub(crate) fn nd_in_maintenance(data: &Object) -> bool {
    match data.get(ND_MAINTENANCE) {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

/// `data` (an instance's node in `format`) marked not serving (`on`) or
/// serving again, every other field kept in place. `reason` is kept where
/// the format has room for it (nd's `maintenance` field).
///
/// # Errors
/// [`MarkError::Unmarkable`] for nerve.
pub fn mark(format: Format, data: &Object, on: bool, reason: Option<&str>) -> Result<Object, MarkError> {
    let mut data = data.clone();
    match format {
        Format::Curator if on => {
            data.insert("enabled".into(), Value::from(false));
        }
        Format::Curator => {
            data.shift_remove("enabled");
        }
        Format::ServerSet => {
            data.insert("status".into(), Value::from(if on { "STOPPING" } else { "ALIVE" }));
        }
        Format::Nd if on => {
            let value = reason.filter(|r| !r.is_empty()).map_or(Value::from(true), Value::from);
            data.insert(ND_MAINTENANCE.into(), value);
        }
        Format::Nd => {
            data.shift_remove(ND_MAINTENANCE);
        }
        Format::Nerve => return Err(MarkError::Unmarkable(format)),
    }
    Ok(data)
}

/// The JSON object `bytes` hold, if any.
pub(crate) fn object_of(bytes: &[u8]) -> Option<Object> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(object)) => Some(object),
        _ => None,
    }
}

/// The node `bytes` at `path` (named `name`) marked: its format and the
/// new bytes.
fn marked(path: &str, bytes: &[u8], on: bool, reason: Option<&str>) -> Result<(Format, Vec<u8>), MarkError> {
    let name = path.rsplit('/').next().unwrap_or_default();
    let Some(data) = object_of(bytes) else {
        return Err(MarkError::NotAnObject { path: path.into() });
    };
    let Some(format) = looks_like(name, &data) else {
        return Err(MarkError::NotAnInstance { path: path.into() });
    };
    let data = mark(format, &data, on, reason)?;
    Ok((format, super::compact(&data)))
}

impl Registry {
    /// Marks the instance node at `path` not serving (`on`) or serving
    /// again in its own format (see [`mark`]) without deregistering it: a
    /// compare-and-set write of its data (tried again if the node changes
    /// meanwhile) that keeps its other fields. Returns the node's format.
    ///
    /// A registration of this registry ([`set_node`](Self::set_node),
    /// `announce_*`) is marked by rewriting the registration, so that it
    /// stays marked (through reconnects and expiries) until it is written
    /// anew. A node held by another process that keeps it registered with
    /// ndsr (`ndsr register`, the agent) is written back by its holder:
    /// mark those through their holder (the agent's `/v1/maintenance`,
    /// `ndsr register --drain`).
    ///
    /// # Errors
    /// [`MarkError::NoNode`], [`MarkError::NotAnObject`],
    /// [`MarkError::NotAnInstance`], [`MarkError::Unmarkable`] (nerve),
    /// [`MarkError::Contention`], or the registry's error
    /// ([`Error::ReadOnly`], [`Error::NoConnection`], ...).
    ///
    /// # Cancellation safety
    /// A write already sent may or may not be performed.
    pub async fn set_maintenance(
        &self,
        path: &str,
        on: bool,
        reason: Option<&str>,
    ) -> Result<Format, MarkError> {
        validate_path(path)?;
        self.check_writable("set_maintenance")?;
        if let Some(bytes) = self.registration(path).await? {
            let (format, new) = marked(path, &bytes, on, reason)?;
            if new != bytes {
                self.set_node_raw(path, new).await?;
            }
            return Ok(format);
        }
        const ATTEMPTS: u32 = 8;
        for _ in 0..ATTEMPTS {
            let Some((bytes, stat)) = self.read_raw(path).await? else {
                return Err(MarkError::NoNode { path: path.into() });
            };
            let (format, new) = marked(path, &bytes, on, reason)?;
            if new == bytes {
                return Ok(format);
            }
            let client = self.shared().lease(self.deadline()).await?.client;
            let writing = client.set_data(path, &new, Some(stat.version));
            match self.shared().call("set_data", path, writing).await {
                Ok(_) => return Ok(format),
                // Changed (or removed) since read: read again.
                Err(Error::ZooKeeper {
                    source: zookeeper_client::Error::BadVersion | zookeeper_client::Error::NoNode,
                    ..
                }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(MarkError::Contention { path: path.into(), attempts: ATTEMPTS })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(json: &str) -> Object {
        object_of(json.as_bytes()).unwrap()
    }

    #[test]
    fn each_format_is_marked_in_place_and_read_back() {
        let curator = r#"{"name":"web","id":"i-1","address":"10.0.0.1","port":80,"sslPort":null,"payload":null,"registrationTimeUTC":5,"serviceType":"DYNAMIC","uriSpec":null}"#;
        let serverset = r#"{"serviceEndpoint":{"host":"10.0.0.1","port":80},"additionalEndpoints":{},"status":"ALIVE","shard":2}"#;
        let nd = r#"{"pid":1,"created":"2026-01-01 00:00:00","zone":"a"}"#;
        for (format, key, json, marked_json) in [
            (Format::Curator, "i-1", curator, curator.replace(r#"null}"#, r#"null,"enabled":false}"#)),
            (Format::ServerSet, "member_0000000001", serverset, serverset.replace("ALIVE", "STOPPING")),
            (Format::Nd, "10.0.0.1:80", nd, nd.replace(r#""a"}"#, r#""a","maintenance":"deploy"}"#)),
        ] {
            let on = mark(format, &obj(json), true, Some("deploy")).unwrap();
            assert_eq!(String::from_utf8(super::super::compact(&on)).unwrap(), marked_json, "{format}");
            let instance = super::super::decode(format, key, &on).unwrap().unwrap();
            assert!(!instance.serving, "{format}");
            let off = mark(format, &on, false, None).unwrap();
            assert_eq!(String::from_utf8(super::super::compact(&off)).unwrap(), json, "{format}");
            assert!(super::super::decode(format, key, &off).unwrap().unwrap().serving, "{format}");
        }
        let nerve = obj(r#"{"host":"10.0.0.1","port":80,"name":"web"}"#);
        assert!(matches!(mark(Format::Nerve, &nerve, true, None), Err(MarkError::Unmarkable(Format::Nerve))));
    }

    #[test]
    fn nd_maintenance_values() {
        for (value, serving) in
            [("true", false), (r#""why""#, false), ("false", true), ("null", true), (r#""""#, true)]
        {
            let data = obj(&format!(r#"{{"pid":1,"created":"x","maintenance":{value}}}"#));
            let instance = super::super::decode(Format::Nd, "h:1", &data).unwrap().unwrap();
            assert_eq!(instance.serving, serving, "{value}");
            assert!(!instance.labels.contains_key(ND_MAINTENANCE));
        }
        assert!(matches!(marked("/s/h:1", b"plain", true, None), Err(MarkError::NotAnObject { .. })));
        assert!(matches!(marked("/s/x", b"{}", true, None), Err(MarkError::NotAnInstance { .. })));
    }
}
