//! A registration: what is asked for (`Spec`), how it is doing
//! (`Status`), and the table of those held (`Registrations`). The tasks
//! that hold them, and the table's changes, are in `registrations`.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::config::What;
use crate::error::ErrorKind;
use crate::hold::{Checked, Maintenance, Release};
use crate::registrations::maintenance::{Marks, StatusMark};

/// Where a registration came from: a reload keeps the API's and replaces
/// the file's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Config,
    Api,
}

/// A registration as asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    pub path: String,
    pub what: What,
    pub checked: Option<Checked>,
    pub source: Source,
}

/// How a registration is doing, as the API and dashboard show it.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub path: String,
    pub source: Source,
    /// `pending` (being written), `checking` (waiting for `rise`
    /// passes), `registered`, `unhealthy` (withdrawn by its check),
    /// `retrying` (ZooKeeper did not answer or another session holds the
    /// node; the registry keeps trying), `maintenance` (a nerve instance
    /// withdrawn while in maintenance: nerve has no mark) or `failed`
    /// (refused for good, e.g. not authorized: the agent stopped holding
    /// it).
    pub state: &'static str,
    /// Why, for `unhealthy` and `retrying`; the failing check while
    /// `registered`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The check's kind and target, e.g. `tcp 127.0.0.1:80`, `cmd` (no
    /// command line), `http URL` (no userinfo or query): what anyone may
    /// read. `for_owner` puts the whole check here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// The whole check (a command line, a URL with its secrets): only for
    /// readers with the write token.
    #[serde(skip)]
    pub full_check: Option<String>,
    /// The node's data, or the instance (with `as`).
    pub data: serde_json::Value,
    /// The node held, when it is not `path` (a ServerSet or nerve
    /// member's sequential node).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Since when it is in this state (ms since the epoch).
    pub since_ms: u64,
    /// Why it failed, as an API error (for `failed`).
    #[serde(skip)]
    pub refusal: Option<(ErrorKind, &'static str)>,
    /// The maintenance it is in (its own, or the whole agent's), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<StatusMark>,
    /// The mark its node carries now (`None`: serving, or no node).
    #[serde(skip)]
    pub carries: Option<Maintenance>,
}

/// A registration held: its spec, its status, and its task.
pub(crate) struct Held {
    pub(crate) spec: Spec,
    pub(crate) status: watch::Receiver<Status>,
    pub(crate) stop: oneshot::Sender<Release>,
    pub(crate) task: JoinHandle<Option<String>>,
}

/// The registrations held, by path.
#[derive(Default)]
pub struct Registrations {
    /// One change at a time (a replacement awaits the old task).
    pub(crate) changing: tokio::sync::Mutex<()>,
    pub(crate) held: Mutex<BTreeMap<String, Held>>,
    /// The maintenance asked for: the whole agent's, and registrations'
    /// own (by registration path). Each hold follows it.
    pub(crate) marks: watch::Sender<Marks>,
    /// Set once a drain begins: maintenance is no longer changed.
    pub(crate) draining: AtomicBool,
}

/// Locks `m`, whether or not a holder panicked.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Now, in ms since the epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// What `put` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Put {
    Created,
    Replaced,
    Unchanged,
}

impl Registrations {
    /// Every registration's status, by path.
    pub fn statuses(&self) -> Vec<Status> {
        let marks = self.marks.borrow().clone();
        lock(&self.held).values().map(|h| with_mark(h.status.borrow().clone(), &marks)).collect()
    }

    /// The status of the registration of `path`, if held.
    pub fn status(&self, path: &str) -> Option<Status> {
        let marks = self.marks.borrow().clone();
        lock(&self.held).get(path).map(|h| with_mark(h.status.borrow().clone(), &marks))
    }
}

/// `status` with the maintenance it is in.
fn with_mark(mut status: Status, marks: &Marks) -> Status {
    status.maintenance = marks.of(&status.path);
    status
}

impl Status {
    /// The status with the whole check (the command line, the URL as
    /// given), for a reader with the write token.
    pub fn for_owner(mut self) -> Status {
        if self.full_check.is_some() {
            self.check = self.full_check.clone();
        }
        self
    }
}
