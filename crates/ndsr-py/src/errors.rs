//! The exception types of `ndsr._core` and the mapping of [`ndsr::Error`]
//! to them.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(_core, NdsrError, PyException, "Base class of every ndsr error.");
create_exception!(_core, NoConnection, NdsrError, "Not connected to ZooKeeper within the timeout.");
create_exception!(_core, ReadOnly, NdsrError, "A write on a read-only registry.");
create_exception!(_core, InvalidPath, NdsrError, "Not a valid ZooKeeper path.");
create_exception!(_core, InvalidArgument, NdsrError, "An argument is out of range or malformed.");
create_exception!(_core, DataTooLarge, NdsrError, "The data or the whole request is over the limit.");
create_exception!(_core, NotAuthorized, NdsrError, "ZooKeeper refused the operation on the node's ACL.");
create_exception!(_core, Conflict, NdsrError, "The node is held by another session.");
create_exception!(
    _core,
    Contention,
    NdsrError,
    "Another client kept changing the node between reads and writes; nothing was written."
);
create_exception!(
    _core,
    OutcomeUnknown,
    NoConnection,
    "A write was sent and no answer came: it may or may not have been applied."
);
create_exception!(_core, LockTimeout, NdsrError, "The lock was not obtained within its wait.");
create_exception!(_core, LockMismatch, NdsrError, "The lock's holders disagree on how many may hold it.");
create_exception!(_core, NotALock, NdsrError, "The lock path holds a node that is not a lock.");
create_exception!(
    _core,
    LayoutMismatch,
    NdsrError,
    "The election or lock path holds another client's node layout (`.found`, `.asked`)."
);
create_exception!(_core, NoInstance, NdsrError, "No instance of the service is eligible to pick.");
create_exception!(_core, NotEmpty, NdsrError, "The node has children.");
create_exception!(_core, ChrootMissing, NdsrError, "The chroot of the connection string does not exist.");
create_exception!(_core, Closed, NdsrError, "The registry is closed.");
create_exception!(
    _core,
    VersionConflict,
    NdsrError,
    "A publish conditional on a version found another (`.current`, None: no node); nothing was written."
);
create_exception!(
    _core,
    Invalid,
    InvalidArgument,
    "A configuration value does not fit its schema (`.violations`: (pointer, message) pairs); nothing was written."
);
create_exception!(_core, SchemaInvalid, InvalidArgument, "A JSON Schema that cannot be used.");
create_exception!(
    _core,
    NotInHistory,
    NdsrError,
    "A version the configuration's history does not hold (`.available`: the versions it holds)."
);
create_exception!(
    _core,
    ConfigUnavailable,
    NdsrError,
    "A typed configuration has no good value to start with, and no default."
);

/// An exception with attributes set on it.
fn with_attrs(err: PyErr, attrs: impl FnOnce(&Bound<'_, PyAny>) -> PyResult<()>) -> PyErr {
    Python::attach(|py| match attrs(err.value(py).as_any()) {
        Ok(()) => err,
        Err(e) => e,
    })
}

/// The library's message, with the hints it gives its Rust and
/// command-line users (`create_chroot(true)`, `Registry::unset_recursive`,
/// `ndsr unset -r`, `max_data_size`) said as Python spells them.
pub(crate) fn python_message(e: &ndsr::Error) -> String {
    use ndsr::Error as E;
    match e {
        E::ChrootMissing { chroot } => format!(
            "the chroot {chroot} does not exist (check its spelling, or create it with \
             ndsr.Registry(servers, create_chroot=True))"
        ),
        E::NotEmpty { path } => {
            let path_literal = python_str(path);
            format!("{path} has children; remove them first, or all at once with registry.unset_recursive({path_literal})")
        }
        E::DataTooLarge { path, size, limit } => format!(
            "writing {path} takes {size} bytes, over the limit of {limit} bytes (ZooKeeper takes at most \
             its jute.maxbuffer, 1 MiB by default, for data, path and ACL together)"
        ),
        other => other.to_string(),
    }
}

/// `text` as a Python string literal, in single quotes as `repr` writes
/// it (a path holds no control character).
fn python_str(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Maps a library error to its Python exception, with the library's
/// message ([`python_message`]).
pub(crate) fn to_py(e: ndsr::Error) -> PyErr {
    use ndsr::Error as E;
    let message = python_message(&e);
    match e {
        E::NoConnection(_) | E::WriteDropped { .. } => NoConnection::new_err(message),
        E::ReadOnly(_) => ReadOnly::new_err(message),
        E::InvalidPath { .. } => InvalidPath::new_err(message),
        E::InvalidArgument(_) | E::InvalidServers { .. } | E::Data { .. } => {
            InvalidArgument::new_err(message)
        }
        E::DataTooLarge { .. } => DataTooLarge::new_err(message),
        E::NotAuthorized { .. } => NotAuthorized::new_err(message),
        E::Conflict { .. } | E::FormatConflict { .. } => Conflict::new_err(message),
        E::Contention { .. } => Contention::new_err(message),
        E::OutcomeUnknown { .. } => OutcomeUnknown::new_err(message),
        E::LockTimeout { .. } => LockTimeout::new_err(message),
        E::LockMismatch { .. } => LockMismatch::new_err(message),
        E::NotALock { .. } => NotALock::new_err(message),
        E::NotEmpty { .. } => NotEmpty::new_err(message),
        E::LayoutMismatch { path, found, asked } => with_attrs(LayoutMismatch::new_err(message), |v| {
            v.setattr("path", path)?;
            v.setattr("found", found)?;
            v.setattr("asked", asked)
        }),
        E::ChrootMissing { .. } => ChrootMissing::new_err(message),
        E::Closed => Closed::new_err(message),
        E::VersionConflict { path, expected, current } => {
            with_attrs(VersionConflict::new_err(message), |v| {
                v.setattr("path", path)?;
                v.setattr("expected", expected)?;
                v.setattr("current", current)
            })
        }
        E::Invalid { path, version, violations } => with_attrs(Invalid::new_err(message), |v| {
            v.setattr("path", path)?;
            v.setattr("version", version)?;
            let pairs: Vec<(String, String)> =
                violations.into_iter().map(|v| (v.pointer, v.message)).collect();
            v.setattr("violations", pairs)
        }),
        E::SchemaInvalid { path, reason } => with_attrs(SchemaInvalid::new_err(message), |v| {
            v.setattr("path", path)?;
            v.setattr("reason", reason)
        }),
        E::NotInHistory { path, version, available } => with_attrs(NotInHistory::new_err(message), |v| {
            v.setattr("path", path)?;
            v.setattr("version", version)?;
            v.setattr("available", available)
        }),
        E::ConfigUnavailable { path, reason } => with_attrs(ConfigUnavailable::new_err(message), |v| {
            v.setattr("path", path)?;
            v.setattr("reason", reason)
        }),
        _ => NdsrError::new_err(message),
    }
}

/// Adds the exception types to the module, under their names.
pub(crate) fn add(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    for (name, class) in [
        ("NdsrError", py.get_type::<NdsrError>()),
        ("NoConnection", py.get_type::<NoConnection>()),
        ("ReadOnly", py.get_type::<ReadOnly>()),
        ("InvalidPath", py.get_type::<InvalidPath>()),
        ("InvalidArgument", py.get_type::<InvalidArgument>()),
        ("DataTooLarge", py.get_type::<DataTooLarge>()),
        ("NotAuthorized", py.get_type::<NotAuthorized>()),
        ("Conflict", py.get_type::<Conflict>()),
        ("Contention", py.get_type::<Contention>()),
        ("OutcomeUnknown", py.get_type::<OutcomeUnknown>()),
        ("LockTimeout", py.get_type::<LockTimeout>()),
        ("LockMismatch", py.get_type::<LockMismatch>()),
        ("NotALock", py.get_type::<NotALock>()),
        ("NoInstance", py.get_type::<NoInstance>()),
        ("LayoutMismatch", py.get_type::<LayoutMismatch>()),
        ("NotEmpty", py.get_type::<NotEmpty>()),
        ("ChrootMissing", py.get_type::<ChrootMissing>()),
        ("Closed", py.get_type::<Closed>()),
        ("VersionConflict", py.get_type::<VersionConflict>()),
        ("Invalid", py.get_type::<Invalid>()),
        ("SchemaInvalid", py.get_type::<SchemaInvalid>()),
        ("NotInHistory", py.get_type::<NotInHistory>()),
        ("ConfigUnavailable", py.get_type::<ConfigUnavailable>()),
    ] {
        m.add(name, class)?;
    }
    Ok(())
}
