//! The supervisor's state machine, pure: a phase and an event give the
//! next phase and the effects to perform (`supervisor.rs` waits for the
//! events and performs the effects). Unit tests drive it without a server.
//!
//! ```text
//!              Connected (BeginEpoch)         Client(Disconnected / SyncConnected)
//! Connecting ------------------------> Open <-----------------------------------+
//!   ^   |  ConnectFailed (BackOff)      |  |                                     |
//!   |   v                               |  +-------------------------------------+
//!   | BackingOff                        |  Client(Expired / AuthFailed)
//!   |   | Waited                        v  (EndEpoch, Pause)
//!   +---+------------------------- Pausing
//!            Waited
//! Open --Close (Shutdown)--> Closing --SessionEnded (Finish)--> Closed
//! any other phase --Close (Finish)--> Closed
//! ```

use zookeeper_client::SessionState;

use crate::session::State;

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

/// Where the supervisor is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Trying to connect.
    Connecting,
    /// A connection attempt failed: waiting before the next.
    BackingOff,
    /// A session is open (connected or reconnecting); the client reports
    /// its state changes.
    Open,
    /// The session expired: a jittered pause before building a new one.
    Pausing,
    /// Ending on `close()`: waiting (bounded) for the session to close.
    Closing,
    /// Done.
    Closed,
}

/// What the supervisor waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// A connection attempt succeeded.
    Connected,
    /// A connection attempt failed.
    ConnectFailed,
    /// The open session's client changed state.
    Client(SessionState),
    /// The back-off delay or the rebuild pause is over.
    Waited,
    /// `close()`, or every handle dropped.
    Close,
    /// The closing session ended (or the wait for it ran out).
    SessionEnded,
}

/// What the supervisor does on a transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    /// A new epoch: publish `Connected` with the new client and start
    /// restoring every desired path beside the session's watch.
    BeginEpoch,
    /// Publish this state, the session kept.
    Publish(State),
    /// Wait the next reconnect back-off delay (saying why).
    BackOff,
    /// The session is gone: remember its id (its nodes are ours to
    /// replace), publish `Expired`, stop the hub, drop the client.
    EndEpoch,
    /// Wait the rebuild jitter.
    Pause,
    /// Publish `Closed`, stop the hub and drop the client, so that its
    /// session closes.
    Shutdown,
    /// Publish `Closed`, stop the hub, answer `close()`.
    Finish,
}

/// The pure transition function.
pub(crate) fn next(phase: Phase, event: Event) -> (Phase, &'static [Effect]) {
    use Effect::*;
    match (phase, event) {
        (Phase::Closed, _) => (Phase::Closed, &[]),
        (Phase::Open, Event::Close) => (Phase::Closing, &[Shutdown]),
        (Phase::Closing, Event::SessionEnded) => (Phase::Closed, &[Finish]),
        (Phase::Closing, _) => (Phase::Closing, &[]),
        (_, Event::Close) => (Phase::Closed, &[Finish]),
        (Phase::Connecting, Event::Connected) => (Phase::Open, &[BeginEpoch]),
        (Phase::Connecting, Event::ConnectFailed) => (Phase::BackingOff, &[BackOff]),
        (Phase::BackingOff | Phase::Pausing, Event::Waited) => (Phase::Connecting, &[]),
        (Phase::Open, Event::Client(state)) => match on_client_state(state) {
            Transition::Publish(State::Connected) => (Phase::Open, &[Publish(State::Connected)]),
            Transition::Publish(_) => (Phase::Open, &[Publish(State::Disconnected)]),
            Transition::Rebuild => (Phase::Pausing, &[EndEpoch, Pause]),
            Transition::Stop => (Phase::Closed, &[Finish]),
        },
        // Nothing else can happen in a phase (an event of another phase).
        (phase, _) => (phase, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_lives_reconnects_expires_and_is_rebuilt() {
        let steps = [
            (Phase::Connecting, Event::ConnectFailed, Phase::BackingOff, &[Effect::BackOff][..]),
            (Phase::BackingOff, Event::Waited, Phase::Connecting, &[]),
            (Phase::Connecting, Event::Connected, Phase::Open, &[Effect::BeginEpoch]),
            (
                Phase::Open,
                Event::Client(SessionState::Disconnected),
                Phase::Open,
                &[Effect::Publish(State::Disconnected)],
            ),
            (
                Phase::Open,
                Event::Client(SessionState::SyncConnected),
                Phase::Open,
                &[Effect::Publish(State::Connected)],
            ),
            (
                Phase::Open,
                Event::Client(SessionState::Expired),
                Phase::Pausing,
                &[Effect::EndEpoch, Effect::Pause],
            ),
            (Phase::Pausing, Event::Waited, Phase::Connecting, &[]),
            (Phase::Connecting, Event::Connected, Phase::Open, &[Effect::BeginEpoch]),
            (Phase::Open, Event::Close, Phase::Closing, &[Effect::Shutdown]),
            (Phase::Closing, Event::SessionEnded, Phase::Closed, &[Effect::Finish]),
        ];
        for (phase, event, expected, effects) in steps {
            assert_eq!(next(phase, event), (expected, effects), "{phase:?} on {event:?}");
        }
    }

    #[test]
    fn an_auth_failure_rebuilds_and_a_closed_client_ends() {
        assert_eq!(next(Phase::Open, Event::Client(SessionState::AuthFailed)).0, Phase::Pausing);
        assert_eq!(
            next(Phase::Open, Event::Client(SessionState::Closed)),
            (Phase::Closed, &[Effect::Finish][..])
        );
    }

    fn phase() -> impl proptest::strategy::Strategy<Value = Phase> {
        use proptest::prelude::*;
        prop_oneof![
            Just(Phase::Connecting),
            Just(Phase::BackingOff),
            Just(Phase::Open),
            Just(Phase::Pausing),
            Just(Phase::Closing),
            Just(Phase::Closed),
        ]
    }

    fn event() -> impl proptest::strategy::Strategy<Value = Event> {
        use proptest::prelude::*;
        let state = prop_oneof![
            Just(SessionState::Disconnected),
            Just(SessionState::SyncConnected),
            Just(SessionState::ConnectedReadOnly),
            Just(SessionState::Expired),
            Just(SessionState::AuthFailed),
            Just(SessionState::Closed),
        ];
        prop_oneof![
            Just(Event::Connected),
            Just(Event::ConnectFailed),
            state.prop_map(Event::Client),
            Just(Event::Waited),
            Just(Event::Close),
            Just(Event::SessionEnded),
        ]
    }

    proptest::proptest! {
        /// Whatever happened before, a close ends in `Closed` within two
        /// events (the second: the session ended), finishing exactly once,
        /// and nothing happens after.
        #[test]
        fn close_always_ends_once(start in phase(), history in proptest::collection::vec(event(), 0..12)) {
            let mut phase = start;
            let mut finished = 0;
            for event in history.into_iter().chain([Event::Close, Event::SessionEnded]) {
                let (after, effects) = next(phase, event);
                if phase == Phase::Closed {
                    proptest::prop_assert!(effects.is_empty() && after == Phase::Closed);
                }
                finished += effects.iter().filter(|e| **e == Effect::Finish).count();
                phase = after;
            }
            proptest::prop_assert_eq!(phase, Phase::Closed);
            // (A supervisor that starts closed has nothing left to answer.)
            proptest::prop_assert_eq!(finished, usize::from(start != Phase::Closed));
        }

        /// An epoch begins only from `Connecting`, and every session lost
        /// is followed by a pause before the next one.
        #[test]
        fn epochs_begin_only_after_connecting(history in proptest::collection::vec(event(), 0..24)) {
            let mut phase = Phase::Connecting;
            for event in history {
                let (after, effects) = next(phase, event);
                if effects.contains(&Effect::BeginEpoch) {
                    proptest::prop_assert_eq!(phase, Phase::Connecting);
                }
                if effects.contains(&Effect::EndEpoch) {
                    proptest::prop_assert_eq!(after, Phase::Pausing);
                }
                phase = after;
            }
        }
    }

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
