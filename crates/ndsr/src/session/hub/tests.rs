//! The hub's bookkeeping, driven by hand (no session: no operation runs).

use super::*;
use crate::config::RegistryBuilder;
use crate::session::actor::PathState;
use crate::session::{Reply, SessionView, State};

fn hub() -> Hub {
    let view = SessionView {
        state: State::Connecting,
        info: None,
        epoch: 0,
        since: std::time::SystemTime::now(),
        error: None,
    };
    Hub::new(Arc::new(Shared {
        config: RegistryBuilder::new("127.0.0.1:1"),
        hosts: "127.0.0.1:1".into(),
        chroot: None,
        cache: Default::default(),
        session: tokio::sync::watch::channel(view).0,
        state: tokio::sync::watch::channel(State::Connecting).0,
        acl: Vec::new(),
        limiter: None,
        cache_file: None,
        requests: Default::default(),
        counters: Default::default(),
        hub: mpsc::channel(1).0,
        tasks: Default::default(),
    }))
}

fn given_up_gauge(hub: &Hub) -> usize {
    hub.shared.counters.registrations_given_up.load(Relaxed)
}

/// The CI failure of `max_write_drops_bounds_the_reconnects_of_a_poisoned_write`:
/// `set_node` sends its `Goal` and, once connected, its `Enforce`. With
/// `max_write_drops(1)`, the operation that starts the path (the optimistic
/// create) can drop the connection and give the registration up before
/// the `Enforce` arrives (a slow caller, or one waiting for the reconnect);
/// with no command waiting, the record went, and the `Enforce` made a new
/// one without goal or count: `Ok(())`. The count now outlives the record.
#[test]
fn a_registration_given_up_before_its_callers_enforce_arrives_is_reported() {
    let mut hub = hub();
    let goal = Goal::Ephemeral(b"poison".to_vec());
    let (reply, _previous) = tokio::sync::oneshot::channel();
    let set = HubCmd::Goal { path: "/svc/h:1".into(), goal: goal.clone(), reply };
    let path = hub.command(set).expect("the path's next step is due");
    let generation = hub.records[&path].generation;

    // The starting operation gave up, with no caller's command waiting.
    let outcome = Outcome { state: PathState::default(), counters: Box::default(), gave_up: Some((goal, 1)) };
    hub.finished(path.clone(), generation, outcome);
    assert!(!hub.records.contains_key(&path), "nothing wants the record: it goes");
    assert_eq!(given_up_gauge(&hub), 1);

    // The caller's Enforce arrives: its record is lent the count, so
    // `Actor::enforce(true)` answers `WriteDropped { attempts: 1 }`.
    let (reply, _answer, _ticket) = Reply::new();
    hub.command(HubCmd::Path(path.to_string(), ActorCmd::Enforce(reply)));
    let record = &hub.records[&path];
    assert!(record.goal.is_none());
    assert_eq!(record.given_up, Some(1), "the caller hears why, not a success");
    assert_eq!(given_up_gauge(&hub), 1, "counted once");

    // A new value starts afresh.
    let (reply, _previous) = tokio::sync::oneshot::channel();
    let goal = Goal::Ephemeral(b"fixed".to_vec());
    hub.command(HubCmd::Goal { path: path.to_string(), goal, reply });
    assert_eq!(hub.records[&path].given_up, None);
    assert_eq!(given_up_gauge(&hub), 0);
}

/// `unset` withdraws a registration given up, whose record went.
#[test]
fn unset_withdraws_a_registration_given_up() {
    let mut hub = hub();
    let goal = Goal::Ephemeral(b"poison".to_vec());
    let (reply, _previous) = tokio::sync::oneshot::channel();
    let path = hub.command(HubCmd::Goal { path: "/svc/h:2".into(), goal: goal.clone(), reply }).unwrap();
    let generation = hub.records[&path].generation;
    let outcome = Outcome { state: PathState::default(), counters: Box::default(), gave_up: Some((goal, 3)) };
    hub.finished(path.clone(), generation, outcome);
    assert_eq!(given_up_gauge(&hub), 1);

    let (reply, registered) = tokio::sync::oneshot::channel();
    hub.command(HubCmd::Unset { path: path.to_string(), reply });
    assert_eq!(registered.blocking_recv(), Ok(false), "no registration is held");
    assert_eq!(given_up_gauge(&hub), 0);
    assert!(hub.gave_up.is_empty());
}

/// `unset` while the caller of a given-up registration still waits: the
/// count goes when the record does (after the caller's answer), not into
/// `gave_up`, so the gauge does not keep counting a path the user removed.
#[test]
fn unset_while_the_caller_waits_withdraws_the_count_with_the_record() {
    let mut hub = hub();
    let goal = Goal::Ephemeral(b"poison".to_vec());
    let (reply, _previous) = tokio::sync::oneshot::channel();
    let path = hub.command(HubCmd::Goal { path: "/svc/h:3".into(), goal: goal.clone(), reply }).unwrap();
    let generation = hub.records[&path].generation;
    let outcome = Outcome { state: PathState::default(), counters: Box::default(), gave_up: Some((goal, 1)) };
    hub.finished(path.clone(), generation, outcome);
    let (reply, _answer, _ticket) = Reply::new();
    hub.command(HubCmd::Path(path.to_string(), ActorCmd::Enforce(reply)));
    assert!(hub.records[&path].has_commands(), "the caller's Enforce waits in the record");

    let (reply, _registered) = tokio::sync::oneshot::channel();
    hub.command(HubCmd::Unset { path: path.to_string(), reply });
    assert_eq!(given_up_gauge(&hub), 1, "still counted while its caller waits");

    // The caller answered, the record goes: the count with it.
    hub.records.get_mut(&path).unwrap().pending = None;
    assert!(hub.forget_if_unwanted(&path));
    assert_eq!(given_up_gauge(&hub), 0);
    assert!(hub.gave_up.is_empty() && hub.unset_given_up.is_empty());
}
