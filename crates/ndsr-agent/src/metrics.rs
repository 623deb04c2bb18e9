//! Metrics: the `metrics` facade and its Prometheus exporter. Counters
//! are counted where things happen; gauges are read from the registry and
//! the agent when scraped (`text`, which `GET /metrics` serves; the HTTP
//! layer counts its requests itself).

use std::sync::OnceLock;
use std::time::SystemTime;

use metrics::{counter, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::state::Agent;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder (once per process).
pub fn install() -> Result<(), String> {
    if HANDLE.get().is_some() {
        return Ok(());
    }
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| format!("metrics: {e}"))?;
    let _ = HANDLE.set(handle);
    Ok(())
}

/// Counts an open event stream (`ndsr_http_streams_open{route}`) while it
/// lives.
pub struct OpenStream(&'static str);

impl OpenStream {
    pub fn new(route: &'static str) -> OpenStream {
        gauge!("ndsr_http_streams_open", "route" => route).increment(1.0);
        OpenStream(route)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        gauge!("ndsr_http_streams_open", "route" => self.0).decrement(1.0);
    }
}

/// The Prometheus text of every metric, the gauges read now; `None`
/// before [`install`].
pub fn text(agent: &Agent) -> Option<String> {
    let handle = HANDLE.get()?;
    observe(agent);
    Some(handle.render())
}

/// Sets the gauges (and the counters the registry keeps) from the state now.
fn observe(agent: &Agent) {
    let stats = agent.registry.stats();
    for &state in ndsr::State::ALL {
        let now = stats.state == state;
        gauge!("ndsr_session_state", "state" => state.name()).set(f64::from(u8::from(now)));
    }
    let stale = stats.disconnected_since.map_or(0.0, age);
    gauge!("ndsr_stale_seconds").set(stale);
    counter!("ndsr_zookeeper_requests_total").absolute(stats.requests);
    counter!("ndsr_reconnects_total").absolute(stats.reconnects);
    counter!("ndsr_session_expiries_total").absolute(stats.expiries);
    counter!("ndsr_callback_errors_total").absolute(stats.callback_errors);
    counter!("ndsr_history_rewinds_total").absolute(stats.history_rewinds);
    gauge!("ndsr_watched_paths").set(stats.watched_paths as f64);
    gauge!("ndsr_registrations_given_up").set(stats.registrations_given_up as f64);
    let (nodes, services) = agent.followed();
    gauge!("ndsr_agent_followed", "kind" => "node").set(nodes as f64);
    gauge!("ndsr_agent_followed", "kind" => "service").set(services as f64);
    let statuses = agent.registrations.statuses();
    for state in ["pending", "checking", "registered", "unhealthy", "retrying", "failed"] {
        let n = statuses.iter().filter(|s| s.state == state).count();
        gauge!("ndsr_agent_registrations", "state" => state).set(n as f64);
    }
    for template in agent.templates.all() {
        gauge!("ndsr_template_ok", "template" => template.template).set(f64::from(u8::from(template.ok)));
    }
    for service in &agent.config().services {
        if let Some(listing) = agent.service_now(&service.path, service.format()) {
            let serving = listing.value.serving().count();
            gauge!("ndsr_service_instances", "service" => service.path.clone(), "serving" => "true")
                .set(serving as f64);
            gauge!("ndsr_service_instances", "service" => service.path.clone(), "serving" => "false")
                .set((listing.value.instances.len() - serving) as f64);
        }
        let stale = agent.stale_since(&service.path).map_or(0.0, age);
        gauge!("ndsr_service_stale_seconds", "service" => service.path.clone()).set(stale);
    }
}

fn age(since: SystemTime) -> f64 {
    since.elapsed().unwrap_or_default().as_secs_f64()
}
