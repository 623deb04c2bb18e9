//! CLI errors: one line for stderr and a documented exit code per class.

use std::process::ExitCode;

/// Exit codes, documented in `--help` and the README.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Unexpected ZooKeeper or system error.
    Failure = 1,
    /// Bad path, invalid JSON, data too large, bad argument.
    InvalidInput = 3,
    /// ZooKeeper unreachable.
    NoConnection = 4,
    /// Refused by an ACL.
    NotAuthorized = 5,
    /// A write with --readonly.
    ReadOnly = 6,
    /// Lock not obtained in time.
    LockTimeout = 7,
    /// Lock lost while the command ran.
    LockLost = 8,
    /// Node held by another session.
    Conflict = 9,
    /// No node at the path (`get` without `--allow-missing`).
    NoNode = 10,
    /// No instance to pick.
    NoInstance = 11,
}

/// An error to report and exit with.
#[derive(Debug)]
pub struct CliError {
    /// The exit code class.
    pub exit: Exit,
    /// What went wrong and what to do, on one line.
    pub message: String,
}

impl CliError {
    /// An error of class `exit`.
    pub fn new(exit: Exit, message: impl Into<String>) -> CliError {
        CliError { exit, message: message.into() }
    }

    /// The process exit code.
    pub fn code(&self) -> ExitCode {
        ExitCode::from(self.exit as u8)
    }
}

impl From<ndsr::Error> for CliError {
    fn from(e: ndsr::Error) -> CliError {
        use ndsr::Error as E;
        let (exit, hint) = match &e {
            E::InvalidPath { .. }
            | E::DataTooLarge { .. }
            | E::InvalidArgument(_)
            | E::InvalidServers { .. }
            | E::ChrootMissing { .. }
            | E::NotALock { .. }
            | E::LockMismatch { .. } => (Exit::InvalidInput, ""),
            E::NotEmpty { .. } => (Exit::InvalidInput, ""),
            E::Data { .. } => (Exit::InvalidInput, ""),
            E::Tls { .. } => (Exit::InvalidInput, " (check --tls-ca, --tls-cert and --tls-key)"),
            E::NoConnection(_) => {
                (Exit::NoConnection, " (is ZooKeeper running? check --server, or raise --timeout)")
            }
            E::NotAuthorized { .. } => (Exit::NotAuthorized, " (check --username/--password)"),
            E::AuthFailed { .. } => (Exit::NotAuthorized, " (check --username/--password and --sasl)"),
            E::ReadOnly(_) => (Exit::ReadOnly, " (drop --readonly to write)"),
            E::LockTimeout { .. } => {
                (Exit::LockTimeout, " (raise --wait, or see who holds it with `ndsr get -d`)")
            }
            E::OutcomeUnknown { .. } => {
                (Exit::NoConnection, " (read the node to see whether the write was applied)")
            }
            E::Conflict { .. } => (Exit::Conflict, ""),
            E::Contention { .. } => (Exit::Conflict, ""),
            E::FormatConflict { .. } => (Exit::Conflict, " (register into a directory of its own)"),
            E::WriteDropped { .. } => (Exit::Failure, ""),
            _ => (Exit::Failure, ""),
        };
        CliError::new(exit, format!("{e}{hint}"))
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> CliError {
        CliError::new(Exit::Failure, e.to_string())
    }
}

/// The CLI's result type.
pub type CliResult<T = ()> = Result<T, CliError>;
