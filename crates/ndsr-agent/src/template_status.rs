//! Each template's last render (ok, or the error that kept its file): what
//! the health check, the dashboard and the metrics show. The renderer
//! (`templates`) records; this module only keeps.

use std::collections::BTreeMap;

use serde::Serialize;

/// A template's last render: ok, or the error that kept its file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TemplateStatus {
    /// The destination file (what metrics call the template).
    pub template: String,
    /// The template's source file.
    pub source: String,
    /// Whether the last render (and write) succeeded.
    pub ok: bool,
    /// Why it failed, while it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it was last rendered (ms since the epoch).
    pub at_ms: u64,
    /// Since when it has been ok, or failing (ms since the epoch).
    pub since_ms: u64,
    /// The services (paths) it waits for, without a first list yet: not
    /// rendered meanwhile. Beyond the template's `wait_limit` it fails.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<String>,
    /// Why the last run of its command failed (exit status, start error,
    /// timeout), until a run succeeds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command_error: Option<String>,
}

/// Every template's last render, by destination; a template not rendered
/// yet (ZooKeeper unreachable since the start) has none, one waiting for a
/// service's first list says which.
#[derive(Debug, Default)]
pub struct TemplateStatuses(std::sync::Mutex<BTreeMap<String, TemplateStatus>>);

impl TemplateStatuses {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, TemplateStatus>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The last render of each template, by destination.
    pub fn all(&self) -> Vec<TemplateStatus> {
        self.lock().values().cloned().collect()
    }

    /// The templates whose last render failed.
    pub fn failed(&self) -> Vec<TemplateStatus> {
        self.lock().values().filter(|s| !s.ok).cloned().collect()
    }

    /// Records how the command of the template writing `destination` last
    /// ran: `None` if it succeeded, else why not.
    pub(crate) fn record_command(&self, destination: &str, error: Option<String>) {
        if let Some(status) = self.lock().get_mut(destination) {
            status.command_error = error;
        }
    }

    /// The last render of the template writing `destination`.
    pub fn get(&self, destination: &str) -> Option<TemplateStatus> {
        self.lock().get(destination).cloned()
    }
}
