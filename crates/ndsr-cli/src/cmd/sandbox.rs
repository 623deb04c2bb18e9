//! `ndsr sandbox`: a local ZooKeeper for development, like `consul agent -dev`.

use std::process::ExitCode;

use ndsr_testkit::ZkServer;

use crate::args::{Global, SandboxArgs};
use crate::cmd::interrupted;
use crate::error::{CliError, CliResult, Exit};
use crate::output;

pub async fn run(global: &Global, args: SandboxArgs) -> CliResult<ExitCode> {
    let mut builder = ZkServer::builder();
    if let Some(port) = args.port {
        builder = builder.port(port);
    }
    if let Some(dir) = &args.data_dir {
        builder = builder.data_dir(dir);
    }
    let started = tokio::task::spawn_blocking(move || builder.start())
        .await
        .map_err(|e| CliError::new(Exit::Failure, e.to_string()))?;
    let server = started.map_err(|e| CliError::new(Exit::Failure, e.to_string()))?;
    output::line(&server.connect_string())?;
    if !global.quiet {
        eprintln!(
            "ndsr: ZooKeeper sandbox serving on {} (data in {}); Ctrl-C to stop",
            server.connect_string(),
            server.data_dir().display()
        );
    }
    interrupted().await;
    // Kill and reap the server (and remove its temp dir) off the runtime.
    let _ = tokio::task::spawn_blocking(move || drop(server)).await;
    if !global.quiet {
        eprintln!("ndsr: sandbox stopped");
    }
    Ok(ExitCode::SUCCESS)
}
