//! The domain's errors: what went wrong, in the agent's words. The HTTP
//! layer (`http`) maps each [`ErrorKind`] to a status code; nothing here
//! knows of HTTP.

/// What kind of failure an [`AgentError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or asks for something invalid.
    BadRequest,
    /// The caller did not prove who it is (no or a wrong token).
    Unauthenticated,
    /// The caller may not do this (read-only, outside the roots, a check
    /// kind the API may not use).
    Forbidden,
    /// Nothing is there.
    NotFound,
    /// The operation is not one this route offers.
    NotAllowed,
    /// It conflicts with what is there (the config file's registration, a
    /// node of another format).
    Conflict,
    /// The request is larger than the agent takes.
    TooLarge,
    /// A limit is reached (every followed path is in use).
    TooMany,
    /// Not possible now: ZooKeeper is unreachable, no value yet, shutting
    /// down.
    Unavailable,
    /// ZooKeeper answered with an error.
    Upstream,
}

/// A failure: its kind, a stable code for programs, and a message for
/// people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// A stable machine-readable code (`bad_request`, `outside_roots`, ...).
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
}

impl AgentError {
    /// An error of `kind` with `code` and `message`.
    pub fn new(kind: ErrorKind, code: &'static str, message: String) -> AgentError {
        AgentError { kind, code, message }
    }

    /// A malformed or invalid request (`bad_request`).
    pub fn bad(message: String) -> AgentError {
        AgentError::new(ErrorKind::BadRequest, "bad_request", message)
    }

    /// Not possible now (`unavailable`).
    pub fn unavailable(message: String) -> AgentError {
        AgentError::new(ErrorKind::Unavailable, "unavailable", message)
    }

    /// Every followed path is in use (`too_many_paths`).
    pub fn too_many(message: String) -> AgentError {
        AgentError::new(ErrorKind::TooMany, "too_many_paths", message)
    }

    /// Nothing there (`not_found`).
    pub fn not_found(message: String) -> AgentError {
        AgentError::new(ErrorKind::NotFound, "not_found", message)
    }
}

impl std::fmt::Display for AgentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for AgentError {}

impl From<ndsr::Error> for AgentError {
    fn from(e: ndsr::Error) -> AgentError {
        use ndsr::Error as E;
        let (kind, code) = match &e {
            E::InvalidPath { .. } | E::DataTooLarge { .. } | E::Data { .. } | E::InvalidArgument(_) => {
                (ErrorKind::BadRequest, "bad_request")
            }
            E::NotAuthorized { .. } => (ErrorKind::Forbidden, "not_authorized"),
            E::ReadOnly(_) => (ErrorKind::Forbidden, "readonly"),
            E::Conflict { .. } | E::FormatConflict { .. } => (ErrorKind::Conflict, "conflict"),
            E::NoConnection(_) | E::Closed => (ErrorKind::Unavailable, "unavailable"),
            _ => (ErrorKind::Upstream, "zookeeper"),
        };
        AgentError::new(kind, code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_errors_keep_their_kind_and_code() {
        let invalid = AgentError::from(ndsr::Error::InvalidArgument("x"));
        assert_eq!((invalid.kind, invalid.code), (ErrorKind::BadRequest, "bad_request"));
        let closed = AgentError::from(ndsr::Error::Closed);
        assert_eq!((closed.kind, closed.code), (ErrorKind::Unavailable, "unavailable"));
    }
}
