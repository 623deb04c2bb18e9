//! Leader election, blocking (see [`crate::election`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{refuse_inside_a_runtime, Registry, Runtime};
use crate::election::{Contender, ElectionBuilder, ElectionStatus, Leadership};
use crate::Result;

impl Registry {
    /// An election to join at `path` as `id`; set its options, then
    /// [`join`](Self::join) it. As [`crate::Registry::election`].
    pub fn election(&self, path: &str, id: &str) -> ElectionBuilder {
        self.inner.election(path, id)
    }

    /// Joins an election, blocking until it knows where it stands.
    ///
    /// # Errors
    /// As [`ElectionBuilder::join`].
    pub fn join(&self, builder: ElectionBuilder) -> Result<Election> {
        let inner = self.block(builder.join())?;
        let state = inner.watch();
        Ok(Election { inner: Some(inner), state, runtime: self.runtime.clone() })
    }

    /// [`crate::election::status`], blocking.
    ///
    /// # Errors
    /// As [`crate::election::status`].
    pub fn election_status(&self, path: &str) -> Result<ElectionStatus> {
        self.block(crate::election::status(&self.inner, path))
    }
}

/// A contender in an election, blocking; resigns on
/// [`resign`](Self::resign) or on drop.
#[derive(Debug)]
pub struct Election {
    inner: Option<crate::election::Election>,
    state: watch::Receiver<Leadership>,
    runtime: Arc<Runtime>,
}

impl Election {
    /// Where this contender stands now.
    pub fn state(&self) -> Leadership {
        self.state.borrow().clone()
    }

    /// Does it lead now?
    pub fn is_leader(&self) -> bool {
        matches!(*self.state.borrow(), Leadership::Leader { .. })
    }

    /// Waits up to `timeout` for the state to differ from `seen`, and
    /// returns the state then (`seen` again after the timeout).
    pub fn wait_change(&self, seen: &Leadership, timeout: Duration) -> Leadership {
        if refuse_inside_a_runtime().is_err() {
            return self.state();
        }
        let mut state = self.state.clone();
        self.runtime
            .handle()
            .block_on(async {
                tokio::time::timeout(timeout, state.wait_for(|s| s != seen))
                    .await
                    .ok()
                    .and_then(|r| r.ok())
                    .map(|s| s.clone())
            })
            .unwrap_or_else(|| self.state())
    }

    /// Waits up to `timeout` to lead; the fencing token once leading.
    pub fn wait_for_leadership(&self, timeout: Duration) -> Option<i64> {
        refuse_inside_a_runtime().ok()?;
        let mut state = self.state.clone();
        self.runtime.handle().block_on(async {
            let led = tokio::time::timeout(
                timeout,
                state.wait_for(|s| matches!(s, Leadership::Leader { .. } | Leadership::Ended)),
            )
            .await;
            match led.ok()?.ok()?.clone() {
                Leadership::Leader { token } => Some(token),
                _ => None,
            }
        })
    }

    /// The path's contenders in this layout, in order.
    ///
    /// # Errors
    /// As [`crate::election::Election::contenders`].
    pub fn contenders(&self) -> Result<Vec<Contender>> {
        refuse_inside_a_runtime()?;
        match &self.inner {
            Some(inner) => self.runtime.handle().block_on(inner.contenders()),
            None => Ok(Vec::new()),
        }
    }

    /// The leader by ZooKeeper's record.
    ///
    /// # Errors
    /// As [`crate::election::Election::leader`].
    pub fn leader(&self) -> Result<Option<Contender>> {
        Ok(self.contenders()?.into_iter().next())
    }

    /// Leaves the election, returning once its node is deleted.
    pub fn resign(mut self) {
        self.resign_now();
    }

    fn resign_now(&mut self) {
        if let Some(inner) = self.inner.take() {
            if refuse_inside_a_runtime().is_ok() {
                self.runtime.handle().block_on(inner.resign());
            }
        }
    }
}

impl Drop for Election {
    fn drop(&mut self) {
        self.resign_now();
    }
}
