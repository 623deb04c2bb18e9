//! The agent's `[[mirror]]` entries: each runs a [`Mirror`] on registries
//! of its own until shutdown, with its lag as metrics
//! (`ndsr_mirror_lag_seconds`, `ndsr_mirror_nodes_behind`, labelled
//! `mirror`).

use std::sync::Arc;
use std::time::Duration;

use metrics::gauge;
use ndsr::Registry;

use super::{Mirror, Status};
use crate::config::MirrorSpec;
use crate::state::Agent;

/// How often the lag gauges are set between passes.
const GAUGE_EVERY: Duration = Duration::from_secs(1);

/// Starts the configuration's mirrors (read at start; a reload does not
/// change them).
pub(crate) fn start(agent: &Arc<Agent>) {
    let config = agent.config();
    for spec in config.mirrors.iter().cloned() {
        let session_timeout = config.session_timeout;
        let cancel = agent.cancel.clone();
        let agent_ = agent.clone();
        agent.tasks.spawn(async move {
            let name = spec.name.clone();
            if let Err(e) = run(&agent_, spec, session_timeout, cancel).await {
                tracing::error!(mirror = %name, "mirror not started: {e}");
            }
        });
    }
}

async fn registry(servers: &str, session_timeout: Option<Duration>, src: bool) -> ndsr::Result<Registry> {
    let mut builder = Registry::builder(servers).lazy(true).readonly(src);
    if let Some(timeout) = session_timeout {
        builder = builder.session_timeout(timeout);
    }
    builder.build().await
}

async fn run(
    agent: &Arc<Agent>,
    spec: MirrorSpec,
    session_timeout: Option<Duration>,
    cancel: tokio_util::sync::CancellationToken,
) -> ndsr::Result<()> {
    let src = registry(&spec.source.servers, session_timeout, true).await?;
    let dst = match registry(&spec.destination.servers, session_timeout, false).await {
        Ok(dst) => dst,
        Err(e) => {
            src.close().await;
            return Err(e);
        }
    };
    let mirror =
        Mirror::new(src.clone(), &spec.source.path, dst.clone(), &spec.destination.path, spec.options);
    let mut status = mirror.status();
    let name = spec.name;
    agent.mirrors.lock().unwrap_or_else(|e| e.into_inner()).push(crate::state::MirrorView {
        name: name.clone(),
        source: format!("{}:{}", spec.source.servers, spec.source.path),
        destination: format!("{}:{}", spec.destination.servers, spec.destination.path),
        status: status.clone(),
    });
    let gauges = async {
        let mut shown = None;
        loop {
            let now = status.borrow_and_update().clone();
            set(&name, &now);
            // The dashboard's model: on a change, and each second while
            // behind (its lag grows).
            if shown.as_ref() != Some(&now) || now.behind_since.is_some() {
                agent.changed();
                shown = Some(now);
            }
            tokio::select! {
                () = tokio::time::sleep(GAUGE_EVERY) => {}
                changed = status.changed() => if changed.is_err() { std::future::pending::<()>().await },
            }
        }
    };
    let mut failing = false;
    let mut missing = false;
    let running = mirror.run(cancel.cancelled(), |pass, _| match pass {
        Ok(pass) => {
            if std::mem::take(&mut failing) {
                tracing::info!(mirror = %name, "mirror passes succeed again");
            }
            if pass.source_missing {
                if !std::mem::replace(&mut missing, true) {
                    tracing::warn!(mirror = %name, "{pass}");
                }
            } else if std::mem::take(&mut missing) || pass.changes() > 0 || pass.failed > 0 {
                tracing::info!(mirror = %name, "{pass}");
            }
        }
        Err(e) if !failing => {
            failing = true;
            tracing::warn!(mirror = %name, "mirror pass failed ({e}); retrying with back-off");
        }
        Err(_) => {}
    });
    tokio::select! {
        () = running => {}
        () = gauges => {}
    }
    src.close().await;
    dst.close().await;
    Ok(())
}

fn set(name: &str, status: &Status) {
    gauge!("ndsr_mirror_lag_seconds", "mirror" => name.to_string()).set(status.lag().as_secs_f64());
    gauge!("ndsr_mirror_nodes_behind", "mirror" => name.to_string()).set(status.nodes_behind as f64);
}
