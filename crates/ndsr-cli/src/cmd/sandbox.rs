//! `ndsr sandbox`: a local ZooKeeper for development, like `consul agent -dev`.

use std::process::ExitCode;

use ndsr_testkit::ZkServer;

use crate::args::{Global, SandboxArgs};
use crate::cmd::interrupted;
use crate::error::{CliError, CliResult, Exit};
use crate::output;

/// ZooKeeper's usual client port.
const USUAL_PORT: u16 = 2181;

pub async fn run(global: &Global, args: SandboxArgs) -> CliResult<ExitCode> {
    let mut builder = ZkServer::builder();
    // --port 0: any free port (ZooKeeper itself refuses clientPort=0).
    if let Some(port) = args.port.filter(|p| *p != 0) {
        // Fail at once with a clear message; the server start below also
        // checks that the server answering on the port is ours.
        if let Err(e) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            return Err(CliError::new(
                Exit::Failure,
                format!("port {port} is not free ({e}); pick another --port"),
            ));
        }
        builder = builder.port(port);
    }
    if let Some(dir) = &args.data_dir {
        builder = builder.data_dir(dir);
    }
    // Without --port: ZooKeeper's usual port when it is free (what the
    // examples and docs/agent.example.toml name), else any free port.
    let usual = args.port.is_none() && std::net::TcpListener::bind(("127.0.0.1", USUAL_PORT)).is_ok();
    let fallback = builder.clone();
    if usual {
        builder = builder.port(USUAL_PORT);
    }
    let started = tokio::task::spawn_blocking(move || match builder.start() {
        // Taken between the check and the start: any free port.
        Err(_) if usual => fallback.start(),
        other => other,
    })
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
    let server = std::sync::Arc::new(server);
    let watched = server.clone();
    // The server must not die unnoticed: poll its JVM while we wait.
    let died = async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            if let Some(status) = watched.exit_status() {
                return status;
            }
        }
    };
    let outcome = tokio::select! {
        () = interrupted() => Ok(()),
        status = died => Err(status),
    };
    let log_tail = std::fs::read_to_string(server.log_file())
        .map(|text| {
            let lines: Vec<&str> =
                text.lines().filter(|l| l.contains("ERROR") || l.contains("Exception")).collect();
            lines[lines.len().saturating_sub(3)..].join("\n")
        })
        .unwrap_or_default();
    // Kill and reap the server (and remove its temp dir) off the runtime.
    let _ = tokio::task::spawn_blocking(move || drop(server)).await;
    match outcome {
        Ok(()) => {
            if !global.quiet {
                eprintln!("ndsr: sandbox stopped");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(status) => {
            if !log_tail.is_empty() {
                eprintln!("{log_tail}");
            }
            Err(CliError::new(Exit::Failure, format!("the sandbox's ZooKeeper server died ({status})")))
        }
    }
}
