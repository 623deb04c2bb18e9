//! Sequential registrations: the node's name comes from ZooKeeper once,
//! then it is kept as an ordinary registration.

use tokio::time::Instant;

use super::Registry;
use crate::{Error, Result};

impl Registry {
    /// Creates an ephemeral sequential node `prefix<sequence>` holding
    /// `bytes` (parents made), then keeps it registered under the name it
    /// got, as [`set_node_raw`](Self::set_node_raw) would: a reconnect in
    /// the same session finds it and does nothing; after an expiry the same
    /// name is created again (exactly one node, the same identity). If the
    /// create's answer was lost, our node is found among the children by
    /// owner and data before creating again. Returns the node's path.
    pub(crate) async fn register_sequential(
        &self,
        op: &'static str,
        prefix: &str,
        bytes: Vec<u8>,
    ) -> Result<String> {
        // The request size is checked with room for the sequence number.
        let bytes = self.check_write(op, &format!("{prefix}0000000000"), bytes)?;
        let Some(parent) = crate::path::parent(prefix) else {
            return Err(Error::InvalidPath {
                path: prefix.into(),
                reason: "a sequential node needs a parent",
            });
        };
        let deadline = self.deadline();
        let mode = zookeeper_client::CreateMode::EphemeralSequential;
        let options = self.shared.create_options(mode);
        let lost = |e: &Error| matches!(e, Error::NoConnection(_) | Error::OutcomeUnknown { .. });
        let unknown = || Error::OutcomeUnknown { op, path: prefix.to_string() };
        // Whether a create was sent whose answer was lost.
        let mut sent = false;
        let path = loop {
            let lease = match self.shared.lease(deadline).await {
                Ok(lease) => lease,
                Err(_) if sent => return Err(unknown()),
                Err(e) => return Err(e),
            };
            let client = &lease.client;
            if sent {
                match self.find_own_sequential(client, prefix, &bytes).await {
                    Ok(Some(path)) => break path,
                    Ok(None) => {} // it was not made: make it
                    Err(e) if lost(&e) && Instant::now() < deadline => continue,
                    Err(e) if lost(&e) => return Err(unknown()),
                    Err(e) => return Err(e),
                }
            }
            if parent != "/" {
                match lease.parents.ensure(&self.shared, client, parent).await {
                    Ok(()) => {}
                    Err(e) if lost(&e) && Instant::now() < deadline => continue,
                    Err(e) if sent && lost(&e) => return Err(unknown()),
                    Err(e) => return Err(e),
                }
            }
            let creating = client.create(prefix, &bytes, &options);
            match self.shared.write_call("create", prefix, client, creating, None).await {
                Ok((_, sequence)) => break format!("{prefix}{sequence}"),
                Err(e) if lost(&e) && Instant::now() < deadline => sent = true,
                Err(e) if lost(&e) => return Err(unknown()),
                Err(e) => return Err(e),
            }
        };
        self.register(op, &path, bytes).await?;
        Ok(path)
    }

    /// Our session's node among `prefix`'s siblings holding `bytes`.
    async fn find_own_sequential(
        &self,
        client: &zookeeper_client::Client,
        prefix: &str,
        bytes: &[u8],
    ) -> Result<Option<String>> {
        let (Some(dir), Some((_, stem))) = (crate::path::parent(prefix), prefix.rsplit_once('/')) else {
            return Ok(None);
        };
        let me = client.session_id().0;
        let children = match self.shared.call("get_children", dir, client.list_children(dir)).await {
            Err(e) if e.is_no_node() => return Ok(None),
            other => other?,
        };
        for child in children.iter().filter(|c| c.starts_with(stem)) {
            let path = crate::path::join(dir, child);
            match self.shared.call("get_data", &path, client.get_data(&path)).await {
                Ok((data, stat)) if stat.ephemeral_owner == me && data == bytes => return Ok(Some(path)),
                Ok(_) => {}
                Err(e) if e.is_no_node() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}
