//! The ZooKeeper call layer: every call has the operation timeout, is
//! counted, and maps its error to the crate's.

use zookeeper_client::Client;

use crate::session::{HubCmd, Lease, Shared, State};
use crate::{Error, Result};

impl Shared {
    /// Waits until connected (or `deadline`) and returns the epoch.
    pub(crate) async fn connected_by(&self, deadline: tokio::time::Instant) -> Result<u64> {
        let mut session = self.session.subscribe();
        let waited = tokio::time::timeout_at(deadline, async {
            loop {
                {
                    let view = session.borrow_and_update();
                    match view.state {
                        State::Connected => return Ok(view.epoch),
                        State::Closed => return Err(Error::Closed),
                        _ => {}
                    }
                    if let Some(error) = &view.error {
                        return Err(error.clone());
                    }
                }
                if session.changed().await.is_err() {
                    return Err(Error::Closed);
                }
            }
        })
        .await;
        waited.unwrap_or_else(|_| Err(self.not_connected()))
    }

    fn not_connected(&self) -> Error {
        Error::NoConnection(format!("not connected to {} within the connect timeout", self.hosts))
    }

    /// Sends the hub `cmd`, waiting for room in its queue until `deadline`.
    /// `what` names the call (`op`, `path`) in the error, if given.
    pub(crate) async fn enqueue(
        &self,
        cmd: HubCmd,
        deadline: tokio::time::Instant,
        what: Option<(&str, &str)>,
    ) -> Result<()> {
        match tokio::time::timeout_at(deadline, self.hub.send(cmd)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => {
                let why = "the registry's command queue stayed full; nothing was sent";
                Err(Error::NoConnection(match what {
                    Some((op, path)) => format!("{op} {path}: {why}"),
                    None => why.to_string(),
                }))
            }
        }
    }

    /// Waits until connected (or `deadline`) and borrows the session's
    /// client from the hub.
    pub(crate) async fn lease(&self, deadline: tokio::time::Instant) -> Result<Lease> {
        loop {
            let epoch = self.connected_by(deadline).await?;
            let (reply, answer) = tokio::sync::oneshot::channel();
            let asked = HubCmd::Lease { epoch, reply };
            match tokio::time::timeout_at(deadline, self.hub.send(asked)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Error::Closed),
                Err(_) => return Err(self.not_connected()),
            }
            match tokio::time::timeout_at(deadline, answer).await {
                Ok(Ok(lease)) => return Ok(lease),
                // That session went between the two (or the hub is not
                // given it yet): wait for the next.
                Ok(Err(_)) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
                Err(_) => return Err(self.not_connected()),
            }
        }
    }

    /// Borrows session `epoch`'s client from the hub, if that session is
    /// still the registry's (not expired, not closed); does not wait for a
    /// connection (a disconnected session's client is lent too).
    pub(crate) async fn lease_of(&self, epoch: u64) -> Option<Lease> {
        if !self.holds(epoch) {
            return None;
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.hub.send(HubCmd::Lease { epoch, reply }).await.ok()?;
        answer.await.ok()
    }

    /// Is session `epoch` still the registry's (not expired, not closed)?
    pub(crate) fn holds(&self, epoch: u64) -> bool {
        let view = self.session.borrow();
        view.epoch == epoch && view.info.is_some() && view.state != State::Closed
    }

    /// Runs one write under the operation timeout, and counts in `drops`
    /// (a registration's) the writes in a row whose connection dropped
    /// while they were in flight on a connected client. A server drops the
    /// connection of a request it refuses to read (over its
    /// `jute.maxbuffer`): resending the same write on every reconnect would
    /// be a reconnect loop, so registrations back off on this count and
    /// give up (see `RegistryBuilder::max_write_drops`).
    pub(crate) async fn write_call<T>(
        &self,
        op: &'static str,
        path: &str,
        client: &Client,
        fut: impl std::future::Future<Output = std::result::Result<T, zookeeper_client::Error>>,
        drops: Option<&std::sync::atomic::AtomicU32>,
    ) -> Result<T> {
        let connected = client.state() == zookeeper_client::SessionState::SyncConnected;
        self.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let raw = tokio::time::timeout(self.op_timeout(), fut).await;
        let dropped = match &raw {
            Ok(Ok(_)) => Some(false),
            Ok(Err(zookeeper_client::Error::ConnectionLoss)) if connected => Some(true),
            _ => None,
        };
        if let (Some(dropped), Some(drops)) = (dropped, drops) {
            use std::sync::atomic::Ordering::Relaxed;
            if dropped {
                let _ = drops.fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_add(1)));
            } else {
                drops.store(0, Relaxed);
            }
        }
        Self::answer(op, path, raw)
    }

    /// Runs one ZooKeeper call under the operation timeout.
    pub(crate) async fn call<T>(
        &self,
        op: &'static str,
        path: &str,
        fut: impl std::future::Future<Output = std::result::Result<T, zookeeper_client::Error>>,
    ) -> Result<T> {
        self.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self::answer(op, path, tokio::time::timeout(self.op_timeout(), fut).await)
    }

    fn answer<T>(
        op: &'static str,
        path: &str,
        raw: std::result::Result<
            std::result::Result<T, zookeeper_client::Error>,
            tokio::time::error::Elapsed,
        >,
    ) -> Result<T> {
        match raw {
            Ok(result) => result.map_err(|e| Error::from_zk(op, path, e)),
            Err(_) => {
                Err(Error::NoConnection(format!("{op} {path}: no answer within the operation timeout")))
            }
        }
    }
}

/// A node as read: its bytes and stat (`None` when missing) and its children.
pub(crate) struct NodeRead {
    pub(crate) node: Option<(Vec<u8>, crate::snapshot::Stat)>,
    pub(crate) children: Vec<String>,
}

/// Reads a node's data and children, pipelined on the connection (both
/// requests are sent before either answer is awaited).
pub(crate) async fn read_node(shared: &Shared, client: &Client, path: &str) -> Result<NodeRead> {
    let (data, children) = tokio::join!(
        shared.call("get_data", path, client.get_data(path)),
        shared.call("get_children", path, client.list_children(path)),
    );
    let node = match data {
        Ok((bytes, stat)) => Some((bytes, crate::snapshot::Stat::from(&stat))),
        Err(e) if e.is_no_node() => None,
        Err(e) => return Err(e),
    };
    let mut children = match children {
        Ok(children) if node.is_some() => children,
        Ok(_) => Vec::new(),
        Err(e) if e.is_no_node() => Vec::new(),
        Err(e) => return Err(e),
    };
    children.sort();
    Ok(NodeRead { node, children })
}
