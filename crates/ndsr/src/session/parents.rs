//! The parent nodes this registry made: many registrations (or lock
//! requests) racing into one new parent make it once. Owned by the hub,
//! which lends it with the session's client (see `Lease`); its lock is its
//! own and is never held across a call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::OnceCell;
use zookeeper_client::Client;

use crate::session::Shared;
use crate::{Error, Result};

/// The parents made (or being made), each a cell that the first caller
/// fills and the others wait for.
#[derive(Default)]
pub(crate) struct Parents(Mutex<HashMap<String, Arc<OnceCell<()>>>>);

impl Parents {
    fn cells(&self) -> MutexGuard<'_, HashMap<String, Arc<OnceCell<()>>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes `parent` and its ancestors (persistent) unless this registry
    /// already did; concurrent callers share one `mkdir`.
    ///
    /// As the original does, only `parent` itself gets the registry's ACL;
    /// higher ancestors are created open (`world:anyone` ALL), so that one
    /// user's registration under `/services/web` does not lock every other
    /// user out of `/services`.
    pub(crate) async fn ensure(&self, shared: &Shared, client: &Client, parent: &str) -> Result<()> {
        let cell = self.cells().entry(parent.to_string()).or_default().clone();
        cell.get_or_try_init(|| make(shared, client, parent)).await.map(|_| ())
    }

    /// Has this registry made (or found) `parent`?
    pub(crate) fn known(&self, parent: &str) -> bool {
        self.cells().get(parent).is_some_and(|cell| cell.initialized())
    }

    /// Forgets that `parent` was made (it was deleted since).
    pub(crate) fn forget(&self, parent: &str) {
        self.cells().remove(parent);
    }
}

async fn make(shared: &Shared, client: &Client, parent: &str) -> Result<()> {
    use zookeeper_client::{Acls, CreateMode, Error as Zk};
    if let Some(grandparent) = crate::path::parent(parent).filter(|g| *g != "/") {
        let open = CreateMode::Persistent.with_acls(Acls::anyone_all());
        shared.call("create ancestors of", parent, client.mkdir(grandparent, &open)).await?;
    }
    let dir = shared.create_options(CreateMode::Persistent);
    match shared.call("create", parent, client.create(parent, b"", &dir)).await {
        Ok(_) | Err(Error::ZooKeeper { source: Zk::NodeExists, .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
