//! `ndsr set-data` and `ndsr unset`.

use std::process::ExitCode;

use crate::args::{Global, SetDataArgs, UnsetArgs};
use crate::cmd::{check_path, connect, read_data};
use crate::error::{CliError, CliResult, Exit};

pub async fn set_data(global: &Global, args: SetDataArgs) -> CliResult<ExitCode> {
    check_path(&args.path)?;
    if args.data.data.is_none() && args.data.data_file.is_none() {
        return Err(CliError::new(Exit::InvalidInput, "set-data needs --data JSON or --data-file FILE"));
    }
    let data = read_data(&args.data)?;
    let registry = connect(global, false).await?;
    let result = registry.set_data(&args.path, data).await;
    registry.close().await;
    result?;
    Ok(ExitCode::SUCCESS)
}

pub async fn unset(global: &Global, args: UnsetArgs) -> CliResult<ExitCode> {
    check_path(&args.path)?;
    if args.recursive && !args.yes {
        return Err(CliError::new(
            Exit::InvalidInput,
            format!("unset -r removes {} and everything under it: add --yes to confirm", args.path),
        ));
    }
    let registry = connect(global, false).await?;
    let result = if args.recursive {
        registry.unset_recursive(&args.path).await.map(|n| {
            if !global.quiet {
                eprintln!("ndsr: removed {n} node(s)");
            }
        })
    } else {
        registry.unset(&args.path).await
    };
    registry.close().await;
    result?;
    Ok(ExitCode::SUCCESS)
}
