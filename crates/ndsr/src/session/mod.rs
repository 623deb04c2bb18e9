//! The session side: shared state, the supervisor and the hub.
//!
//! Files, by what they hold: `machine.rs` (the session's state machine,
//! pure), `supervisor.rs` (the task that runs it), `hub/` (the path table and its operations' scheduling),
//! `watch_table.rs` (the watches and what each covers), `actor.rs` (the
//! operations on one path), `reconcile.rs` (owner-checked writes, deciding each step with
//! `decide.rs`'s pure function),
//! `desired.rs` (a registration's goal and counts), `parents.rs` (the
//! parents made), `commands.rs` (how handles reach the hub), `shared.rs`
//! and `calls.rs` (the settings every part reads, and the ZooKeeper call
//! layer).
//!
//! One supervisor task per registry owns the ZooKeeper session: it connects,
//! notices disconnects and expiry, and after expiry builds a new client (a
//! new *epoch*). It owns the hub (`hub/`), one task for the life of the
//! registry that does the work of every path the program cares about (a
//! registration or a watch): the path's watch, reads, writes and
//! registration enforcement, one operation (`actor.rs`) per path at a time,
//! so that a write and the reads that follow it can never overtake each
//! other, while different paths proceed concurrently (requests are
//! pipelined on the one connection). Every other call gets the session's
//! client from the hub too (`Lease`): one route to ZooKeeper.

pub(crate) mod actor;
mod calls;
mod commands;
pub(crate) mod decide;
pub(crate) mod desired;
pub(crate) mod hub;
mod machine;
pub(crate) mod parents;
pub(crate) mod reconcile;
mod record;
mod shared;
pub(crate) mod supervisor;
pub(crate) mod watch_table;

pub(crate) use calls::read_node;
pub(crate) use commands::{ActorCmd, HubCmd, Lease, Reply, WithdrawOnDrop, QUEUE};
pub(crate) use desired::Goal;
pub(crate) use shared::Shared;

/// The ids of the sessions a registry held before the current one.
pub(crate) type PastSessions = std::collections::HashSet<i64>;

use std::time::SystemTime;

use crate::Error;

/// The registry's connection state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// Not connected yet (a lazy registry before its first connection).
    Connecting,
    /// Connected; watches are live.
    Connected,
    /// Lost the connection; the session may still be alive, and the
    /// registry is reconnecting. Reads return stale snapshots.
    Disconnected,
    /// The session expired; the registry is building a new one and will
    /// restore every registration and watch.
    Expired,
    /// Closed by `close()` or by dropping every handle.
    Closed,
}

impl State {
    /// Every state, in the order of their names in [`State::name`].
    pub const ALL: &'static [State] =
        &[State::Connecting, State::Connected, State::Disconnected, State::Expired, State::Closed];

    /// The state's name as the CLI, the agent and the Python module show
    /// it: `connecting`, `connected`, `disconnected`, `expired`, `closed`.
    ///
    /// ```
    /// assert_eq!(ndsr::State::Connected.name(), "connected");
    /// assert_eq!(ndsr::State::Expired.to_string(), "expired");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            State::Connecting => "connecting",
            State::Connected => "connected",
            State::Disconnected => "disconnected",
            State::Expired => "expired",
            State::Closed => "closed",
        }
    }
}

impl std::str::FromStr for State {
    type Err = String;

    /// The state named `name` (as [`State::name`] spells it).
    fn from_str(name: &str) -> Result<State, String> {
        State::ALL.iter().copied().find(|s| s.name() == name).ok_or_else(|| format!("unknown state {name:?}"))
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The session as the rest of the crate sees it.
#[derive(Clone)]
pub(crate) struct SessionView {
    pub(crate) state: State,
    /// This epoch's session (id and password), while connected or
    /// disconnected. (Its client is the hub's to lend: see `Lease`.)
    pub(crate) info: Option<zookeeper_client::SessionInfo>,
    pub(crate) epoch: u64,
    /// When the connection was last lost (for staleness).
    pub(crate) since: SystemTime,
    /// Why the last connection attempt failed, when retrying cannot help
    /// (a missing chroot): callers waiting for a connection get it at once.
    pub(crate) error: Option<Error>,
}

#[cfg(test)]
mod tests {
    use super::State;

    #[test]
    fn states_have_names() {
        let names: Vec<String> = State::ALL.iter().map(|s| s.to_string()).collect();
        assert_eq!(names, ["connecting", "connected", "disconnected", "expired", "closed"]);
        assert!(State::ALL.iter().all(|s| s.name() == s.to_string()));
        assert!(State::ALL.iter().all(|s| s.name().parse() == Ok(*s)));
        assert_eq!("up".parse::<State>(), Err("unknown state \"up\"".to_string()));
    }
}
