//! The supervisor: one task per registry that owns the ZooKeeper session.
//!
//! ```text
//!            connect ok                  Disconnected
//! Connecting ----------> Connected <-------------------> Disconnected
//!     ^                      |        SyncConnected            |
//!     |  backoff             | Expired / AuthFailed            |
//!     +------------------ Expired <----------------------------+
//! any state --close() or last handle dropped--> Closed
//! ```
//!
//! Each successful connect starts an epoch: the hub of the previous epoch is
//! stopped and every desired path is handed to the new client's hub,
//! registrations first, so that watchers of a service see our own members
//! back before they re-read the member list.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};
use zookeeper_client::{Client, CreateMode, SessionState};

use crate::backoff::Backoff;
use crate::session::{ensure_actor, ActorCmd, SessionView, Shared, State};
use crate::{Error, Result};

/// A request from a handle to the supervisor.
pub(crate) enum Command {
    /// End the session and answer once it is closed.
    Close(oneshot::Sender<()>),
}

/// What a state change of the client means for the registry.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Transition {
    /// Publish this state and carry on.
    Publish(State),
    /// The session is gone: rebuild a new one.
    Rebuild,
    /// The client was closed.
    Stop,
}

/// The pure decision: given a client state, what next.
pub(crate) fn on_client_state(state: SessionState) -> Transition {
    match state {
        SessionState::Disconnected => Transition::Publish(State::Disconnected),
        SessionState::SyncConnected | SessionState::ConnectedReadOnly => {
            Transition::Publish(State::Connected)
        }
        SessionState::Expired | SessionState::AuthFailed => Transition::Rebuild,
        SessionState::Closed => Transition::Stop,
    }
}

pub(crate) async fn run(shared: Arc<Shared>, mut cmds: mpsc::UnboundedReceiver<Command>) {
    let mut backoff =
        Backoff::new(Duration::from_millis(100), Duration::from_secs(10), Duration::from_secs(30));
    let mut epoch = 0;
    let close_reply = 'sessions: loop {
        let connected = tokio::select! {
            connected = connect(&shared) => connected,
            cmd = cmds.recv() => break 'sessions reply_of(cmd),
        };
        let client = match connected {
            Ok(client) => client,
            Err(e) => {
                let delay = backoff.next_delay();
                if let Error::ChrootMissing { .. } = &e {
                    // Retrying cannot help until someone creates it: say so
                    // to whoever waits for a connection, and keep checking.
                    tracing::error!(servers = %shared.hosts, error = %e, retry_in = ?delay, "cannot use ZooKeeper");
                    let error = e.clone();
                    shared.session.send_modify(|view| view.error = Some(error));
                } else {
                    tracing::warn!(servers = %shared.hosts, error = %e, retry_in = ?delay, "cannot connect to ZooKeeper");
                }
                tokio::select! {
                    () = tokio::time::sleep(delay) => continue 'sessions,
                    cmd = cmds.recv() => break 'sessions reply_of(cmd),
                }
            }
        };
        backoff.succeeded();
        epoch += 1;
        tracing::info!(session = %client.session_id(), epoch, "connected to ZooKeeper");
        publish(&shared, State::Connected, Some(client.clone()), epoch);
        let mut states = client.state_watcher();
        // Starting the epoch (restoring registrations first) runs beside the
        // watch on the session, so a close or another expiry meanwhile is
        // seen at once; the start is dropped with the epoch.
        let starting = start_epoch(&shared, epoch);
        tokio::pin!(starting);
        let mut started = false;
        loop {
            tokio::select! {
                () = &mut starting, if !started => started = true,
                state = states.changed() => match on_client_state(state) {
                    Transition::Publish(state) => {
                        tracing::info!(?state, "ZooKeeper connection state");
                        publish(&shared, state, Some(client.clone()), epoch);
                    }
                    Transition::Rebuild => {
                        tracing::warn!(session = %client.session_id(), ?state, "session lost; building a new one");
                        shared.past_sessions.lock().unwrap_or_else(|e| e.into_inner()).insert(client.session_id().0);
                        publish(&shared, State::Expired, None, epoch);
                        stop_actors(&shared).await;
                        let pause = crate::backoff::rebuild_jitter(shared.config.rebuild_jitter_or_default());
                        tokio::select! {
                            () = tokio::time::sleep(pause) => continue 'sessions,
                            cmd = cmds.recv() => break 'sessions reply_of(cmd),
                        }
                    }
                    Transition::Stop => break 'sessions None,
                },
                cmd = cmds.recv() => {
                    let reply = reply_of(cmd);
                    publish(&shared, State::Closed, None, epoch);
                    stop_actors(&shared).await;
                    // pitfall 15: the session closes once the last clone of
                    // the client is dropped; wait for it so that our
                    // ephemeral nodes are gone when close() returns.
                    drop(client);
                    let _ = tokio::time::timeout(shared.op_timeout(), async {
                        while !states.changed().await.is_terminated() {}
                    })
                    .await;
                    break 'sessions reply;
                }
            }
        }
    };
    publish(&shared, State::Closed, None, epoch);
    stop_actors(&shared).await;
    if let Some(reply) = close_reply {
        let _ = reply.send(());
    }
}

fn reply_of(cmd: Option<Command>) -> Option<oneshot::Sender<()>> {
    cmd.map(|Command::Close(reply)| reply)
}

fn publish(shared: &Shared, state: State, client: Option<Client>, epoch: u64) {
    // The time of a disconnection first, then the public state, then the
    // view: whoever sees the view change (e.g. `build` waiting to connect)
    // then finds the same state in `state()`, and a stale read its `since`.
    shared.session.send_modify(|view| {
        if state != State::Connected && view.state == State::Connected {
            view.since = SystemTime::now();
        }
    });
    shared.state.send_if_modified(|current| std::mem::replace(current, state) != state);
    shared
        .session
        .send_modify(|view| *view = SessionView { state, client, epoch, since: view.since, error: None });
}

/// Connects to the servers and checks the chroot (creating it only when
/// asked to: never implicitly, never in read-only mode).
async fn connect(shared: &Shared) -> Result<Client> {
    let timeout = shared.config.session_timeout * 2;
    let mut connector = Client::connector().with_session_timeout(shared.config.session_timeout);
    if let Some(credentials) = &shared.config.credentials {
        // Kept by the connector and re-sent on every reconnect.
        connector = connector.with_auth("digest", &credentials.auth_bytes());
    }
    let connecting = connector.connect(&shared.hosts);
    let client = match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok(client)) => client,
        Ok(Err(e)) => return Err(Error::NoConnection(format!("connecting to {}: {e}", shared.hosts))),
        Err(_) => return Err(Error::NoConnection(format!("connecting to {}: no answer", shared.hosts))),
    };
    let Some(chroot) = &shared.chroot else { return Ok(client) };
    // `exists` needs no permission, so a chroot under a parent that refuses
    // creates (or reads) is still usable.
    if shared.call("exists", chroot, client.check_stat(chroot)).await?.is_none() {
        if !shared.config.create_chroot || shared.config.readonly {
            return Err(Error::ChrootMissing { chroot: chroot.clone() });
        }
        let dir = shared.create_options(CreateMode::Persistent);
        match shared.call("create chroot", chroot, client.mkdir(chroot, &dir)).await {
            Ok(()) | Err(Error::ZooKeeper { source: zookeeper_client::Error::NodeExists, .. }) => {}
            Err(e) => return Err(e),
        }
        tracing::info!(chroot, "created the chroot");
    }
    client
        .chroot(chroot.as_str())
        .map_err(|_| Error::InvalidPath { path: chroot.clone(), reason: "the client refused this chroot" })
}

/// Starts the actors of a new epoch: registrations first, waiting (bounded)
/// until each has restored its node, then every watch.
async fn start_epoch(shared: &Arc<Shared>, epoch: u64) {
    stop_actors_before(shared, epoch).await;
    let (registrations, watches): (Vec<_>, Vec<_>) = {
        let desired = shared.desired();
        desired
            .iter()
            .map(|(path, desire)| (path.clone(), desire.goal.is_some()))
            .partition(|(_, goal)| *goal)
    };
    let mut ready = Vec::with_capacity(registrations.len());
    for (path, _) in &registrations {
        if let Some(tx) = ensure_actor(shared, path) {
            let (reply, rx) = oneshot::channel();
            if tx.send(ActorCmd::Ready(reply)).is_ok() {
                ready.push(rx);
            }
        }
    }
    let all_ready = futures::future::join_all(ready);
    if tokio::time::timeout(shared.op_timeout(), all_ready).await.is_err() {
        tracing::warn!("not every registration was restored within the operation timeout; continuing");
    }
    for (path, _) in &watches {
        ensure_actor(shared, path);
    }
}

/// Stops the hub and waits until its task (and its client clones) are gone.
async fn stop_actors(shared: &Shared) {
    stop_actors_before(shared, u64::MAX).await;
}

/// Stops the hub of an epoch before `epoch` (a handle may already have
/// started the new one).
async fn stop_actors_before(shared: &Shared, epoch: u64) {
    let old = {
        let mut hub = shared.hub();
        if hub.as_ref().is_some_and(|h| h.epoch < epoch) {
            hub.take()
        } else {
            None
        }
    };
    if let Some(old) = old {
        old.task.abort();
        let _ = old.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_states_map_to_transitions() {
        assert_eq!(on_client_state(SessionState::Disconnected), Transition::Publish(State::Disconnected));
        assert_eq!(on_client_state(SessionState::SyncConnected), Transition::Publish(State::Connected));
        assert_eq!(on_client_state(SessionState::ConnectedReadOnly), Transition::Publish(State::Connected));
        assert_eq!(on_client_state(SessionState::Expired), Transition::Rebuild);
        assert_eq!(on_client_state(SessionState::AuthFailed), Transition::Rebuild);
        assert_eq!(on_client_state(SessionState::Closed), Transition::Stop);
    }
}
