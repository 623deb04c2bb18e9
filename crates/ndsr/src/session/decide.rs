//! The pure part of reconciling: given what the program wants of a node and
//! what a read just found there, the one thing to do next. `reconcile.rs`
//! performs it (every write conditional on the version read here) and reads
//! again; nothing here touches the network, so it is tested exhaustively.

use crate::session::Goal;

/// A node as a read found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Observed<'a> {
    Missing,
    Node { data: &'a [u8], owner: i64, version: i32 },
}

/// Whose an ephemeral owner is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    /// A persistent node (owner 0).
    Nobody,
    /// This registry's live session.
    Us,
    /// One of this registry's earlier sessions (the server may not have
    /// expired it yet, pitfall 3).
    OurPast,
    /// Another client's live session.
    Other,
}

impl Owner {
    /// Classifies `owner` for the session `me`.
    pub(crate) fn of(owner: i64, me: i64, is_past: impl Fn(i64) -> bool) -> Owner {
        match owner {
            0 => Owner::Nobody,
            o if o == me => Owner::Us,
            o if is_past(o) => Owner::OurPast,
            _ => Owner::Other,
        }
    }
}

/// The next step towards a goal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// The goal holds: nothing to write.
    Done,
    /// Create the ephemeral node.
    Create,
    /// Rewrite our own node's data, if still at `version`.
    SetData { version: i32 },
    /// Atomically delete our earlier session's node (at `version`) and
    /// create ours, so watchers never see the registration missing.
    Replace { version: i32 },
    /// Delete the node, if still at `version`.
    Delete { version: i32 },
    /// A persistent node where an unset registration should leave none:
    /// wait our turn (see `reconcile::pace_foreign_delete`), then look again.
    Pace,
    /// Another session's registration holds the path: never touched.
    /// For a registration, an error (`Conflict`); for an unset one, done.
    LeaveAlone { owner: i64 },
}

/// The next step to bring a node from `observed` to `goal`. `paced`: an
/// unset registration has already waited its turn to delete a stray
/// persistent node.
pub(crate) fn decide(goal: &Goal, observed: Observed<'_>, owner: Owner, paced: bool) -> Action {
    match (goal, observed) {
        (Goal::Ephemeral(_), Observed::Missing) => Action::Create,
        (Goal::Ephemeral(bytes), Observed::Node { data, version, .. }) => match owner {
            Owner::Us if data == bytes.as_slice() => Action::Done,
            Owner::Us => Action::SetData { version },
            Owner::OurPast => Action::Replace { version },
            Owner::Nobody | Owner::Other => Action::LeaveAlone { owner: raw_owner(observed) },
        },
        (Goal::Absent, Observed::Missing) => Action::Done,
        (Goal::Absent, Observed::Node { version, .. }) => match owner {
            Owner::Other => Action::LeaveAlone { owner: raw_owner(observed) },
            Owner::Us | Owner::OurPast => Action::Delete { version },
            Owner::Nobody if !paced => Action::Pace,
            Owner::Nobody => Action::Delete { version },
        },
    }
}

fn raw_owner(observed: Observed<'_>) -> i64 {
    match observed {
        Observed::Node { owner, .. } => owner,
        Observed::Missing => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ME: i64 = 0x100;
    const PAST: i64 = 0x99;

    fn owner_of(o: i64) -> Owner {
        Owner::of(o, ME, |x| x == PAST)
    }

    fn goal() -> impl Strategy<Value = Goal> {
        prop_oneof![
            Just(Goal::Absent),
            proptest::collection::vec(any::<u8>(), 0..4).prop_map(Goal::Ephemeral)
        ]
    }

    fn node() -> impl Strategy<Value = Option<(Vec<u8>, i64, i32)>> {
        let owner = prop_oneof![Just(0i64), Just(ME), Just(PAST), Just(0x7777i64), any::<i64>()];
        proptest::option::of((proptest::collection::vec(any::<u8>(), 0..4), owner, any::<i32>()))
    }

    fn observed(node: &Option<(Vec<u8>, i64, i32)>) -> Observed<'_> {
        match node {
            None => Observed::Missing,
            Some((data, owner, version)) => Observed::Node { data, owner: *owner, version: *version },
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Another live session's node is never written or deleted, and
        /// every write is conditional on the version read.
        #[test]
        fn never_touches_another_sessions_node_and_writes_only_what_was_read(
            goal in goal(), node in node(), paced in any::<bool>()
        ) {
            let seen = observed(&node);
            let owner = node.as_ref().map_or(Owner::Nobody, |(_, o, _)| owner_of(*o));
            let action = decide(&goal, seen, owner, paced);
            if owner == Owner::Other {
                prop_assert!(matches!(action, Action::LeaveAlone { .. }), "{action:?}");
            }
            match (action, &node) {
                (Action::SetData { version } | Action::Replace { version } | Action::Delete { version }, Some((_, _, v))) =>
                    prop_assert_eq!(version, *v),
                (Action::SetData { .. } | Action::Replace { .. } | Action::Delete { .. } | Action::Pace, None) =>
                    prop_assert!(false, "{action:?} of a missing node"),
                (Action::Create, Some(_)) => prop_assert!(false, "create over an existing node"),
                _ => {}
            }
        }

        /// Done exactly when the goal holds: our own node with our bytes,
        /// or no node (an unset registration's path).
        #[test]
        fn done_exactly_when_the_goal_holds(goal in goal(), node in node(), paced in any::<bool>()) {
            let owner = node.as_ref().map_or(Owner::Nobody, |(_, o, _)| owner_of(*o));
            let action = decide(&goal, observed(&node), owner, paced);
            let holds = match (&goal, &node) {
                (Goal::Ephemeral(bytes), Some((data, o, _))) => owner_of(*o) == Owner::Us && data == bytes,
                (Goal::Ephemeral(_), None) => false,
                (Goal::Absent, node) => node.is_none(),
            };
            prop_assert_eq!(action == Action::Done, holds, "{:?}", action);
        }

        /// Performing the action (as a cooperative server would) reaches the
        /// goal in at most three steps from any state.
        #[test]
        fn reaches_the_goal(goal in goal(), node in node()) {
            let mut node = node;
            let mut paced = false;
            for _ in 0..3 {
                let owner = node.as_ref().map_or(Owner::Nobody, |(_, o, _)| owner_of(*o));
                let bytes = match &goal { Goal::Ephemeral(b) => b.clone(), Goal::Absent => Vec::new() };
                match decide(&goal, observed(&node), owner, paced) {
                    Action::Done | Action::LeaveAlone { .. } => return Ok(()),
                    Action::Create | Action::Replace { .. } => node = Some((bytes, ME, 0)),
                    Action::SetData { version } => node = Some((bytes, ME, version.wrapping_add(1))),
                    Action::Delete { .. } => node = None,
                    Action::Pace => paced = true,
                }
            }
            prop_assert!(false, "no goal after three steps: {:?}", node);
        }
    }

    #[test]
    fn the_table() {
        let ours = Observed::Node { data: b"x", owner: ME, version: 3 };
        let eph = Goal::Ephemeral(b"x".to_vec());
        assert_eq!(decide(&eph, ours, Owner::Us, false), Action::Done);
        assert_eq!(
            decide(&Goal::Ephemeral(b"y".to_vec()), ours, Owner::Us, false),
            Action::SetData { version: 3 }
        );
        assert_eq!(decide(&eph, ours, Owner::OurPast, false), Action::Replace { version: 3 });
        assert_eq!(decide(&eph, ours, Owner::Other, false), Action::LeaveAlone { owner: ME });
        assert_eq!(decide(&eph, Observed::Missing, Owner::Nobody, false), Action::Create);
        assert_eq!(decide(&Goal::Absent, ours, Owner::Nobody, false), Action::Pace);
        assert_eq!(decide(&Goal::Absent, ours, Owner::Nobody, true), Action::Delete { version: 3 });
        assert_eq!(decide(&Goal::Absent, ours, Owner::Us, false), Action::Delete { version: 3 });
        assert_eq!(decide(&Goal::Absent, Observed::Missing, Owner::Nobody, false), Action::Done);
    }
}
