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
    /// A configuration value (or the live value under a schema being set)
    /// does not fit the schema.
    Invalid = 12,
    /// A configuration write's `--if-version` did not match.
    VersionConflict = 13,
    /// `diff`: the plan has changes.
    PlanHasChanges = 14,
}

/// An error to report and exit with.
#[derive(Debug)]
pub struct CliError {
    /// The exit code class.
    pub exit: Exit,
    /// What went wrong and what to do, on one line.
    pub message: String,
    /// Lines printed under the message (each violation of a schema).
    pub details: Vec<String>,
}

impl CliError {
    /// An error of class `exit`.
    pub fn new(exit: Exit, message: impl Into<String>) -> CliError {
        CliError { exit, message: message.into(), details: Vec::new() }
    }

    /// The same, with lines to print under the message.
    pub fn with_details(mut self, details: Vec<String>) -> CliError {
        self.details = details;
        self
    }

    /// The process exit code.
    pub fn code(&self) -> ExitCode {
        ExitCode::from(self.exit as u8)
    }
}

impl From<ndsr::Error> for CliError {
    fn from(e: ndsr::Error) -> CliError {
        use ndsr::Error as E;
        if let E::Invalid { path, version, violations } = &e {
            let which =
                version.map_or_else(|| "the value".to_string(), |v| format!("the live value (version {v})"));
            let hint = if version.is_some() { " (--force sets the schema anyway)" } else { "" };
            return CliError::new(
                Exit::Invalid,
                format!(
                    "{which} of {path} does not fit its schema ({}); nothing was written{hint}",
                    count(violations.len(), "violation")
                ),
            )
            .with_details(violation_lines(violations));
        }
        let (exit, hint) = match &e {
            E::InvalidPath { .. }
            | E::DataTooLarge { .. }
            | E::InvalidArgument(_)
            | E::InvalidServers { .. }
            | E::ChrootMissing { .. }
            | E::NotALock { .. }
            | E::LockMismatch { .. }
            | E::LayoutMismatch { .. } => (Exit::InvalidInput, ""),
            E::NotEmpty { .. } => (Exit::InvalidInput, ""),
            E::Data { .. } => (Exit::InvalidInput, ""),
            E::SchemaInvalid { .. } | E::NotInHistory { .. } => (Exit::InvalidInput, ""),
            E::NoRelease { .. } => (Exit::InvalidInput, " (`ndsr config publish` it first)"),
            E::NoCanary { .. } => (Exit::NoNode, " (start one with `ndsr config canary`)"),
            E::VersionConflict { .. } => (
                Exit::VersionConflict,
                " (read it again, or see who wrote it with `ndsr config history`, then retry)",
            ),
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

/// Each violation as `POINTER: message` (the whole value's pointer, `""`,
/// said in words).
pub fn violation_lines(violations: &[ndsr::release::Violation]) -> Vec<String> {
    violations
        .iter()
        .map(|v| {
            let pointer = if v.pointer.is_empty() { "(the whole value)" } else { &v.pointer };
            format!("{pointer}: {}", v.message)
        })
        .collect()
}

/// `1 violation`, `2 violations`.
pub fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> CliError {
        CliError::new(Exit::Failure, e.to_string())
    }
}

/// The CLI's result type.
pub type CliResult<T = ()> = Result<T, CliError>;
