//! The supervisor: one task per registry that owns the ZooKeeper session.
//!
//! It is an explicit state machine (`machine.rs`): a pure [`next`] gives
//! the next phase and the effects to perform; [`run`] only waits for the
//! event each phase expects and performs the effects.
//!
//! It owns the hub (`hub/`): it starts it, hands it each new session's
//! client (an *epoch*), tells it when the session is lost, and ends it (and
//! waits for it) when the registry closes.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::FutureExt;
use tokio::sync::{mpsc, oneshot};
use zookeeper_client::{Client, CreateMode, SessionState};

use crate::backoff::Backoff;
use crate::session::machine::{next, Effect, Event, Phase};
use crate::session::{hub, HubCmd, SessionView, Shared, State};
use crate::{Error, Result};

/// A request from a handle to the supervisor.
pub(crate) enum Command {
    /// End the session and answer once it is closed.
    Close(oneshot::Sender<()>),
}

/// The supervisor's resources: what [`next`]'s effects act on.
struct Supervisor {
    shared: Arc<Shared>,
    cmds: mpsc::UnboundedReceiver<Command>,
    backoff: Backoff,
    epoch: u64,
    client: Option<Client>,
    states: Option<zookeeper_client::StateWatcher>,
    /// The hub's task (awaited when the registry closes).
    hub_task: Option<tokio::task::JoinHandle<()>>,
    /// Why the last connection attempt failed.
    failure: Option<Error>,
    /// The back-off delay or the pause to wait.
    delay: Duration,
    close_reply: Option<oneshot::Sender<()>>,
}

/// Runs the session until the registry closes; `hub`: the receiving end of
/// the hub's command channel (`Shared::hub` is the sending end).
pub(crate) async fn run(
    shared: Arc<Shared>,
    cmds: mpsc::UnboundedReceiver<Command>,
    hub: mpsc::Receiver<HubCmd>,
) {
    let reconnect = shared.config.reconnect_backoff_or_default();
    let hub_task = shared.tasks.spawn(hub::run(shared.clone(), hub));
    let mut supervisor = Supervisor {
        shared,
        cmds,
        backoff: Backoff::new(reconnect.initial, reconnect.max, reconnect.calm),
        epoch: 0,
        client: None,
        states: None,
        hub_task: Some(hub_task),
        failure: None,
        delay: Duration::ZERO,
        close_reply: None,
    };
    let mut phase = Phase::Connecting;
    while phase != Phase::Closed {
        let event = supervisor.wait(phase).await;
        let (next_phase, effects) = next(phase, event);
        for effect in effects {
            supervisor.perform(*effect).await;
        }
        phase = next_phase;
    }
}

impl Supervisor {
    /// Waits for the next event the phase expects (a close request in
    /// every phase).
    async fn wait(&mut self, phase: Phase) -> Event {
        match phase {
            Phase::Connecting => tokio::select! {
                connected = connect(&self.shared) => match connected {
                    Ok(client) => {
                        self.client = Some(client);
                        Event::Connected
                    }
                    Err(e) => {
                        self.failure = Some(e);
                        Event::ConnectFailed
                    }
                },
                cmd = self.cmds.recv() => self.close_requested(cmd),
            },
            Phase::BackingOff | Phase::Pausing => tokio::select! {
                () = tokio::time::sleep(self.delay) => Event::Waited,
                cmd = self.cmds.recv() => self.close_requested(cmd),
            },
            Phase::Open => {
                let Some(states) = self.states.as_mut() else { return Event::Client(SessionState::Closed) };
                tokio::select! {
                    state = states.changed() => Event::Client(state),
                    cmd = self.cmds.recv() => self.close_requested(cmd),
                }
            }
            Phase::Closing => {
                // pitfall 15: the session closes once the last clone of
                // the client is dropped; wait for it so that our ephemeral
                // nodes are gone when close() returns.
                if let Some(states) = self.states.as_mut() {
                    let _ = tokio::time::timeout(self.shared.op_timeout(), async {
                        while !states.changed().await.is_terminated() {}
                    })
                    .await;
                }
                Event::SessionEnded
            }
            Phase::Closed => Event::Close,
        }
    }

    /// Ends the hub and waits until its task (and its clones of the
    /// client) are gone.
    async fn stop_hub(&mut self) {
        let Some(task) = self.hub_task.take() else { return };
        let _ = self.shared.hub.send(HubCmd::Close).await;
        let _ = task.await;
    }

    fn close_requested(&mut self, cmd: Option<Command>) -> Event {
        self.close_reply = cmd.map(|Command::Close(reply)| reply);
        Event::Close
    }

    async fn perform(&mut self, effect: Effect) {
        match effect {
            Effect::BeginEpoch => {
                let Some(client) = self.client.clone() else { return };
                self.backoff.succeeded();
                self.epoch += 1;
                self.shared.counters.history_warned.store(false, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(session = %client.session_id(), epoch = self.epoch, "connected to ZooKeeper");
                self.states = Some(client.state_watcher());
                let _ =
                    self.shared.hub.send(HubCmd::Session { client: client.clone(), epoch: self.epoch }).await;
                publish(&self.shared, State::Connected, Some(client), self.epoch);
            }
            Effect::Publish(state) => {
                tracing::info!(?state, "ZooKeeper connection state");
                publish(&self.shared, state, self.client.clone(), self.epoch);
            }
            Effect::BackOff => {
                self.delay = self.backoff.next_delay();
                let (shared, delay) = (&self.shared, self.delay);
                match self.failure.take() {
                    Some(
                        e @ (Error::ChrootMissing { .. } | Error::Tls { .. } | Error::AuthFailed { .. }),
                    ) => {
                        // Retrying cannot help until someone creates the
                        // chroot or fixes the certificates: say so to
                        // whoever waits for a connection, and keep checking.
                        tracing::error!(servers = %shared.hosts, error = %e, retry_in = ?delay, "cannot use ZooKeeper");
                        shared.session.send_modify(|view| view.error = Some(e));
                    }
                    e => {
                        let error = e.map(|e| e.to_string()).unwrap_or_default();
                        tracing::warn!(servers = %shared.hosts, error, retry_in = ?delay, "cannot connect to ZooKeeper");
                    }
                }
            }
            Effect::EndEpoch => {
                let mut session = None;
                if let Some(client) = self.client.take() {
                    tracing::warn!(session = %client.session_id(), "session lost; building a new one");
                    crate::stats::Counters::bump(&self.shared.counters.expiries);
                    session = Some(client.session_id().0);
                }
                self.states = None;
                publish(&self.shared, State::Expired, None, self.epoch);
                let _ = self.shared.hub.send(HubCmd::Lost { session }).await;
            }
            Effect::Pause => {
                self.delay = crate::backoff::rebuild_jitter(self.shared.config.rebuild_jitter_or_default())
            }
            Effect::Shutdown => {
                publish(&self.shared, State::Closed, None, self.epoch);
                self.stop_hub().await;
                self.client = None;
            }
            Effect::Finish => {
                self.client = None;
                self.states = None;
                publish(&self.shared, State::Closed, None, self.epoch);
                self.stop_hub().await;
                if let Some(reply) = self.close_reply.take() {
                    let _ = reply.send(());
                }
            }
        }
    }
}

fn publish(shared: &Shared, state: State, client: Option<Client>, epoch: u64) {
    let info = client.map(|c| c.session().clone());
    // The time of a disconnection first, then the public state, then the
    // view: whoever sees the view change (e.g. `build` waiting to connect)
    // then finds the same state in `state()`, and a stale read its `since`.
    shared.session.send_modify(|view| {
        if state != State::Connected && view.state == State::Connected {
            view.since = SystemTime::now();
        }
    });
    let mut was = state;
    shared.state.send_if_modified(|current| {
        was = std::mem::replace(current, state);
        was != state
    });
    if state == State::Connected && matches!(was, State::Disconnected | State::Expired) {
        crate::stats::Counters::bump(&shared.counters.reconnects);
    }
    shared
        .session
        .send_modify(|view| *view = SessionView { state, info, epoch, since: view.since, error: None });
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
    if let Some(sasl) = &shared.config.sasl {
        connector = connector
            .with_sasl(zookeeper_client::SaslOptions::digest_md5(sasl.user.clone(), sasl.password.clone()));
    }
    let tls = shared.config.tls.as_ref();
    let connecting = match tls {
        None => connector.connect(&shared.hosts).boxed(),
        // Tried once per host, so that a certificate problem is told (by
        // `diagnose`) at once, not after the connect timeout.
        Some(tls) => {
            connector.with_tls(tls.options()?).with_fail_eagerly().secure_connect(&shared.hosts).boxed()
        }
    };
    let failed = |why: String| async move {
        if let Some(tls) = tls {
            let first = shared.hosts.split(',').next().unwrap_or_default();
            let address = first.strip_prefix("tcp+tls://").unwrap_or(first);
            if !address.starts_with("tcp://") {
                if let Some(reason) = tls.diagnose(address, std::time::Duration::from_secs(5)).await {
                    return Error::Tls { reason: format!("connecting to {address}: {reason}") };
                }
            }
        }
        Error::NoConnection(format!("connecting to {}: {why}", shared.hosts))
    };
    let client = match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok(client)) => client,
        Ok(Err(zookeeper_client::Error::AuthFailed)) => {
            let reason = match &shared.config.sasl {
                Some(sasl) => format!("SASL DIGEST-MD5 as {:?} failed (wrong user or password?)", sasl.user),
                None => "the server requires SASL authentication (give a user and password)".to_string(),
            };
            return Err(Error::AuthFailed { reason });
        }
        Ok(Err(e)) => return Err(failed(e.to_string()).await),
        Err(_) => return Err(failed("no answer".into()).await),
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
