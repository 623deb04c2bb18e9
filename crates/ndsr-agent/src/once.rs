//! `ndsr agent --once`: renders every template once (after the first
//! sync, commands run) and exits; no HTTP, no registrations.

use std::sync::Arc;
use std::time::Duration;

use crate::state::Agent;
use crate::{templates, Launch, RunError};

impl Launch {
    /// Renders every template once, runs the commands of the files that
    /// changed (each to its end or its `command_timeout`), and returns.
    ///
    /// # Errors
    /// [`RunError::Registry`]: ZooKeeper did not answer;
    /// [`RunError::Templates`]: a template failed, or was not rendered
    /// within its `wait_limit`, or its command failed or timed out.
    pub async fn once(self, builder: ndsr::RegistryBuilder) -> Result<(), RunError> {
        let Launch { config, .. } = self;
        let registry = builder.readonly(true).lazy(false).build().await?;
        // The longest a template may wait for a first list, then every
        // command's timeout (they run one after another), then a little
        // more to write the errors.
        let limit = config.templates.iter().map(|t| t.wait_limit.unwrap_or(Duration::from_secs(30))).max();
        let commands: Duration = config
            .templates
            .iter()
            .filter(|t| t.command.is_some())
            .map(|t| t.command_timeout.unwrap_or(Duration::from_secs(60)))
            .sum();
        let limit = limit.unwrap_or(Duration::ZERO) + commands + Duration::from_secs(5);
        let agent = Agent::new(registry, config);
        follow_services(&agent);
        let (settled, mut rendered) = tokio::sync::watch::channel(false);
        let (written, _) = tokio::sync::watch::channel(0);
        agent.tasks.spawn(templates::run(agent.clone(), settled, written));
        let done = tokio::time::timeout(limit, rendered.wait_for(|s| *s)).await.map(|r| r.map(|_| ()));
        agent.cancel.cancel();
        agent.registry.close().await;
        agent.tasks.close();
        if tokio::time::timeout(crate::SHUTDOWN_GRACE, agent.tasks.wait()).await.is_err() {
            tracing::warn!("agent tasks did not finish within {:?}", crate::SHUTDOWN_GRACE);
        }
        let mut failed: Vec<String> = agent
            .templates
            .failed()
            .into_iter()
            .map(|s| format!("{}: {}", s.template, s.error.unwrap_or_default()))
            .collect();
        // A command that failed or timed out fails the run too.
        failed.extend(
            agent
                .templates
                .all()
                .into_iter()
                .filter_map(|s| s.command_error.map(|e| format!("{}: {e}", s.template))),
        );
        if !matches!(done, Ok(Ok(()))) {
            let rendered = agent.templates.all();
            let config = agent.config();
            let missing =
                config.templates.iter().map(|t| t.destination.display().to_string()).filter(|name| {
                    !rendered.iter().any(|s| &s.template == name && (s.waiting.is_empty() || !s.ok))
                });
            failed.extend(
                missing.map(|name| {
                    format!("{name}: not rendered within {limit:?} (ZooKeeper or a service stale)")
                }),
            );
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(RunError::Templates(failed.join("; ")))
        }
    }
}

/// Follows the configured services (what templates see).
fn follow_services(agent: &Arc<Agent>) {
    for service in &agent.config().services {
        let (agent, path, format) = (agent.clone(), service.path.clone(), service.format());
        agent.clone().tasks.spawn(async move {
            if let Err(e) = agent.service(&path, format).await {
                tracing::warn!(service = %path, "not read yet: {}", e.message);
            }
        });
    }
}
