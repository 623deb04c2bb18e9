//! The queue behind a registry's pool of callback threads.
//!
//! A [`CallbackHub`] follows many subscriptions at once, each with a task
//! on the registry's runtime (no thread per path), and hands their
//! snapshots to a few Python worker threads (`ndsr._dispatch`), which run
//! the callbacks with the GIL and ask the hub for the next job with it
//! released. Per path:
//!
//! - one job at a time: a path whose callbacks are running is not handed
//!   out again until its worker says it is done, so a path's callbacks run
//!   one at a time, in order;
//! - a path that falls behind keeps only its latest snapshot (as a
//!   [`ndsr::Subscription`] does), so the queue holds each path at most
//!   once;
//! - a path whose callback blocks holds one worker; the others serve the
//!   other paths.
//!
//! Workers are started lazily and retire when idle: the hub tells a worker
//! that takes a job to start another when no other worker is idle (up to
//! the pool's size), and lets a worker idle for `idle` seconds go when
//! another is idle too, or when no path is followed. So a registry with
//! 10,000 paths with callbacks has at most `size` workers, and one while
//! nothing happens.
//!
//! A typed configuration (`ndsr.Config`) is followed the same way: its
//! slot is fed by the core's good values (`watch_config`), and its job
//! carries no snapshot (None): the dispatcher reads the latest value.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::release::ConfigCore;
use crate::{Snapshot, Subscription};

/// What a followed path has for its worker.
enum Pending {
    /// The path's latest snapshot.
    Snapshot(Arc<ndsr::Snapshot>),
    /// A typed configuration has a new good value (read by the worker).
    Changed,
}

/// One followed path.
struct Slot {
    /// What the worker is given with each snapshot (the Python dispatcher).
    target: Arc<Py<PyAny>>,
    /// The latest snapshot not yet handed out.
    pending: Option<Pending>,
    /// In `ready`.
    queued: bool,
    /// A worker runs its callbacks.
    busy: bool,
    /// Its subscription ended: the slot goes once nothing is pending.
    ended: bool,
    /// The task following the subscription.
    task: tokio::task::AbortHandle,
}

#[derive(Default)]
struct State {
    slots: HashMap<u64, Slot>,
    /// Paths with a pending snapshot and no worker, oldest first.
    ready: VecDeque<u64>,
    next_key: u64,
    /// Workers alive (or being started).
    live: usize,
    /// Workers waiting for a job.
    idle: usize,
    /// Workers told to start that have not asked for a job yet.
    starting: usize,
    closed: bool,
}

impl State {
    /// Queues `key` if it has something pending and no worker.
    fn queue(&mut self, key: u64) -> bool {
        let Some(slot) = self.slots.get_mut(&key) else { return false };
        if slot.pending.is_some() && !slot.busy && !slot.queued {
            slot.queued = true;
            self.ready.push_back(key);
            return true;
        }
        if slot.ended && slot.pending.is_none() && !slot.busy {
            self.slots.remove(&key);
        }
        false
    }

    /// A worker is done with `key`'s job.
    fn done(&mut self, key: u64) -> bool {
        if let Some(slot) = self.slots.get_mut(&key) {
            slot.busy = false;
        }
        self.queue(key)
    }

    /// Should a worker taking a job start another?
    fn spawn_needed(&mut self, size: usize) -> bool {
        if self.idle + self.starting == 0 && self.live < size && !self.closed {
            self.live += 1;
            self.starting += 1;
            true
        } else {
            false
        }
    }
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A snapshot of `key` arrived (`None`: its subscription ended).
    /// Returns whether to keep following it.
    fn arrived(&self, key: u64, snapshot: Option<Pending>) -> bool {
        let mut state = self.lock();
        if state.closed {
            return false;
        }
        let Some(slot) = state.slots.get_mut(&key) else { return false };
        let more = match snapshot {
            // The latest replaces one not yet handed out.
            Some(snapshot) => {
                slot.pending = Some(snapshot);
                true
            }
            None => {
                slot.ended = true;
                false
            }
        };
        if state.queue(key) {
            self.wake.notify_one();
        }
        more
    }
}

/// Ends a path's slot when the task following its subscription ends or
/// is dropped (ending it twice is harmless).
struct EndOnDrop {
    shared: Arc<Shared>,
    key: u64,
}

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        self.shared.arrived(self.key, None);
    }
}

/// A job for a worker: the path's key, its dispatcher, the snapshot (None
/// for a typed configuration), and whether to start another worker first.
type Job = (u64, Py<PyAny>, Option<Py<Snapshot>>, bool);

/// The queue of a registry's callback threads (see the module's doc).
#[pyclass(module = "ndsr._core", frozen)]
pub(crate) struct CallbackHub {
    shared: Arc<Shared>,
    size: usize,
    idle: Duration,
}

impl CallbackHub {
    /// A new slot for `target`, fed by the task `feed` makes (spawned on
    /// `runtime`); returns its key and whether the caller must start a
    /// worker.
    fn follow<F, Fut>(
        &self,
        runtime: &tokio::runtime::Handle,
        target: Py<PyAny>,
        feed: F,
    ) -> PyResult<(u64, bool)>
    where
        F: FnOnce(Arc<Shared>, u64) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut state = self.shared.lock();
        if state.closed {
            return Err(crate::Closed::new_err("the registry is closed"));
        }
        let key = state.next_key;
        state.next_key += 1;
        let shared = self.shared.clone();
        let fed = feed(shared.clone(), key);
        let task = runtime.spawn(async move {
            // Also when the task is dropped unfinished (the registry went
            // without close(), its runtime shut down): the slot must end,
            // or the last worker would stay for it, holding the callbacks.
            let _end = EndOnDrop { shared, key };
            fed.await;
        });
        let slot = Slot {
            target: Arc::new(target),
            pending: None,
            queued: false,
            busy: false,
            ended: false,
            task: task.abort_handle(),
        };
        state.slots.insert(key, slot);
        // The first worker (or one more, if none is idle: the others may
        // all be held by callbacks); later ones are started by workers
        // taking jobs.
        let spawn = state.spawn_needed(self.size);
        Ok((key, spawn))
    }
}

#[pymethods]
impl CallbackHub {
    /// A hub for at most `size` workers, which retire after `idle` seconds
    /// without a job.
    #[new]
    #[pyo3(signature = (size, idle=5.0))]
    fn new(size: usize, idle: f64) -> PyResult<CallbackHub> {
        if size == 0 {
            return Err(PyValueError::new_err("callback_threads must be at least 1"));
        }
        let idle = crate::seconds(idle, "idle")?;
        if idle.is_zero() {
            return Err(PyValueError::new_err("idle must be more than 0 seconds"));
        }
        let shared = Arc::new(Shared { state: Mutex::default(), wake: Condvar::new() });
        Ok(CallbackHub { shared, size, idle })
    }

    /// Follows `subscription` (which it takes over): each snapshot is
    /// handed to a worker with `target`. Returns the path's key and whether
    /// the caller must start a worker (then it calls `started(True)` from
    /// it, or `started(False)` if it could not).
    fn watch(&self, subscription: &Bound<'_, Subscription>, target: Py<PyAny>) -> PyResult<(u64, bool)> {
        let subscription = subscription.get();
        let inner = subscription.inner.clone();
        self.follow(subscription.runtime.handle(), target, move |shared, key| async move {
            let mut sub = inner.lock().await;
            while shared.arrived(key, sub.next().await.map(Pending::Snapshot)) {}
        })
    }

    /// Follows the good values of a typed configuration as `watch` follows
    /// a subscription: each new one is a job (without a snapshot) for
    /// `target`. Returns as `watch` does.
    fn watch_config(&self, config: &Bound<'_, ConfigCore>, target: Py<PyAny>) -> PyResult<(u64, bool)> {
        let config = config.get();
        let mut changes = config.config.changes();
        self.follow(config.runtime.handle(), target, move |shared, key| async move {
            while shared.arrived(key, changes.next().await.map(|_| Pending::Changed)) {}
        })
    }

    /// Stops following `key`: no job of it starts after this (one running
    /// ends on its own).
    fn remove(&self, key: u64) {
        let slot = {
            let mut state = self.shared.lock();
            state.ready.retain(|k| *k != key);
            state.slots.remove(&key)
        };
        // Dropped without the lock: its target's last reference may run
        // Python code.
        if let Some(slot) = slot {
            slot.task.abort();
        }
    }

    /// A worker the hub asked for has started (`false`: it could not be).
    fn started(&self, ok: bool) {
        let mut state = self.shared.lock();
        state.starting = state.starting.saturating_sub(1);
        if !ok {
            state.live = state.live.saturating_sub(1);
        }
    }

    /// For a worker: marks `done` (the key of its last job) done, then
    /// waits (GIL released) for the next job. None: the worker must end
    /// (the hub was closed, or it was idle long enough and is not needed),
    /// and is no longer counted.
    #[pyo3(signature = (done=None))]
    fn take(&self, py: Python<'_>, done: Option<u64>) -> PyResult<Option<Job>> {
        let shared = &self.shared;
        let (size, idle_for) = (self.size, self.idle);
        let job = py.detach(move || {
            let mut state = shared.lock();
            if let Some(key) = done {
                state.done(key);
            }
            state.idle += 1;
            let mut since = Instant::now();
            loop {
                if !state.closed {
                    if let Some(key) = state.ready.pop_front() {
                        let Some(slot) = state.slots.get_mut(&key) else { continue };
                        slot.queued = false;
                        let Some(snapshot) = slot.pending.take() else { continue };
                        slot.busy = true;
                        let target = slot.target.clone();
                        state.idle -= 1;
                        let spawn = state.spawn_needed(size);
                        return Some((key, target, snapshot, spawn));
                    }
                    let waited = since.elapsed();
                    if waited < idle_for {
                        state = shared
                            .wake
                            .wait_timeout(state, idle_for - waited)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                        continue;
                    }
                    if state.idle == 1 && !state.slots.is_empty() {
                        // The last idle worker stays for the paths it serves.
                        since = Instant::now();
                        continue;
                    }
                }
                state.idle -= 1;
                state.live = state.live.saturating_sub(1);
                return None;
            }
        });
        job.map(|(key, target, pending, spawn)| {
            let snapshot = match pending {
                Pending::Snapshot(snapshot) => Some(Py::new(py, Snapshot(snapshot, None))?),
                Pending::Changed => None,
            };
            Ok((key, target.clone_ref(py), snapshot, spawn))
        })
        .transpose()
    }

    /// For a worker ending otherwise than by `take` returning None (an
    /// error): marks `done` done and stops counting the worker.
    #[pyo3(signature = (done=None))]
    fn leave(&self, py: Python<'_>, done: Option<u64>) {
        // Without the GIL: a slot let go under the lock must not run Python.
        py.detach(|| {
            let mut state = self.shared.lock();
            if let Some(key) = done {
                if state.done(key) {
                    self.shared.wake.notify_one();
                }
            }
            state.live = state.live.saturating_sub(1);
        });
    }

    /// No job starts after this; idle workers end now, busy ones after
    /// their job. Every subscription is let go.
    fn close(&self) {
        let slots = {
            let mut state = self.shared.lock();
            state.closed = true;
            state.ready.clear();
            std::mem::take(&mut state.slots)
        };
        self.shared.wake.notify_all();
        for slot in slots.into_values() {
            slot.task.abort();
        }
    }

    /// (For tests.) Workers alive, idle, and paths followed.
    #[pyo3(name = "_counts")]
    fn counts(&self) -> (usize, usize, usize) {
        let state = self.shared.lock();
        (state.live, state.idle, state.slots.len())
    }
}
