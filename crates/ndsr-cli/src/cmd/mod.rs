//! One module per command, and what they share.

pub mod get;
pub mod lock;
pub mod register;
pub mod sandbox;
pub mod watch;
pub mod write;

use ndsr::{Data, Registry};

use crate::args::{DataArgs, Global};
use crate::error::{CliError, CliResult, Exit};

/// Connects a registry with the global options.
pub async fn connect(global: &Global, lazy: bool) -> CliResult<Registry> {
    let mut builder = Registry::builder(&global.server)
        .session_timeout(global.session_timeout)
        .connect_timeout(global.timeout)
        .operation_timeout(global.timeout)
        .readonly(global.readonly)
        .lazy(lazy);
    if let (Some(user), Some(password)) = (&global.username, &global.password) {
        builder = builder.auth(user.clone(), password.clone());
    }
    Ok(builder.build().await?)
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
    Ok(Data::from(value))
}

/// Waits for SIGINT or SIGTERM.
pub async fn interrupted() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
