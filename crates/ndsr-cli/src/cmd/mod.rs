//! One module per command, and what they share.

pub mod child;
pub mod config;
pub mod discovery;
pub mod docs;
pub mod elect;
pub mod get;
pub mod leash;
pub mod lock;
pub mod maint;
pub mod mirror;
pub mod register;
pub mod sandbox;
pub mod tree;
pub mod watch;
pub mod write;

use ndsr::{Data, Registry};

use crate::args::{DataArgs, Global};
use crate::error::{CliError, CliResult, Exit};

/// Connects a registry with the global options.
pub async fn connect(global: &Global, lazy: bool) -> CliResult<Registry> {
    Ok(builder(global, lazy)?.build().await?)
}

/// A registry's builder with the global options.
pub fn builder(global: &Global, lazy: bool) -> CliResult<ndsr::RegistryBuilder> {
    let builder = Registry::builder(&global.server)
        .session_timeout(global.session_timeout)
        .connect_timeout(global.timeout)
        .operation_timeout(global.timeout)
        .readonly(global.readonly)
        .create_chroot(global.create_chroot)
        .lazy(lazy);
    secure(global, builder)
}

/// The credentials and TLS of the global options, added to `builder`.
pub fn secure(global: &Global, mut builder: ndsr::RegistryBuilder) -> CliResult<ndsr::RegistryBuilder> {
    if let (Some(user), Some(password)) = (&global.username, &global.password) {
        builder = match global.sasl {
            true => builder.sasl_digest_md5(user.clone(), password.clone()),
            false => builder.auth(user.clone(), password.clone()),
        };
    }
    if let Some(tls) = tls(global)? {
        builder = builder.tls(tls);
    }
    Ok(builder)
}

/// The TLS settings of `--tls-ca`, `--tls-cert` and `--tls-key`, read.
fn tls(global: &Global) -> CliResult<Option<ndsr::Tls>> {
    let Some(ca) = &global.tls_ca else { return Ok(None) };
    let read = |path: &std::path::Path, what: &str| {
        std::fs::read_to_string(path).map_err(|e| {
            CliError::new(Exit::InvalidInput, format!("cannot read {what} {}: {e}", path.display()))
        })
    };
    let mut tls = ndsr::Tls::new(read(ca, "--tls-ca")?);
    if let (Some(cert), Some(key)) = (&global.tls_cert, &global.tls_key) {
        tls = tls.identity(read(cert, "--tls-cert")?, read(key, "--tls-key")?);
    }
    Ok(Some(tls))
}

/// Checks a path before connecting, so bad input fails fast.
pub fn check_path(path: &str) -> CliResult {
    ndsr::validate_path(path).map_err(Into::into)
}

/// The data given by `--data` or `--data-file` (none: no data).
pub fn read_data(args: &DataArgs) -> CliResult<Data> {
    let (text, origin) = match (&args.data, &args.data_file) {
        (Some(text), _) => (text.clone(), "--data".to_string()),
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file).map_err(|e| {
                CliError::new(Exit::InvalidInput, format!("cannot read {}: {e}", file.display()))
            })?;
            (text, file.display().to_string())
        }
        (None, None) => return Ok(Data::None),
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        CliError::new(
            Exit::InvalidInput,
            format!("{origin} is not valid JSON ({e}); give an object like '{{\"port\":80}}', a \"string\" or null"),
        )
    })?;
    match value {
        serde_json::Value::Array(_) | serde_json::Value::Number(_) | serde_json::Value::Bool(_) => {
            Err(CliError::new(
                Exit::InvalidInput,
                format!(
                    "{origin} is a JSON {}; give an object like '{{\"port\":80}}', a \"string\" or null (the original refuses other data too)",
                    kind(&value)
                ),
            ))
        }
        value => Ok(Data::from(value)),
    }
}

fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Null => "null",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Object(_) => "object",
    }
}

/// Which stop signal arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM.
    Terminate,
    /// SIGHUP: the terminal or the supervisor went away.
    Hangup,
}

/// The stop signals: SIGINT, SIGTERM and SIGHUP, installed once so that a
/// second signal is seen too.
pub struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers (the signals no longer end the process).
    pub fn new() -> CliResult<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for the next stop signal.
    pub async fn next(&mut self) -> Stop {
        tokio::select! {
            _ = self.interrupt.recv() => Stop::Interrupt,
            _ = self.terminate.recv() => Stop::Terminate,
            _ = self.hangup.recv() => Stop::Hangup,
        }
    }
}

/// Waits for SIGINT, SIGTERM or SIGHUP.
pub async fn interrupted() {
    match Signals::new() {
        Ok(mut signals) => {
            signals.next().await;
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
