//! The selector's tests (property tests and fixed cases).

use super::Strategy;
use super::*;
use crate::discovery::{Format, Instance};
use proptest::prelude::{any, prop_assert, prop_assert_eq, proptest, ProptestConfig};

fn instance(key: &str, serving: bool, weight: Option<u32>, zone: &str) -> Arc<Instance> {
    let mut labels = std::collections::BTreeMap::new();
    labels.insert("zone".to_string(), zone.to_string());
    Arc::new(Instance {
        key: key.into(),
        format: Format::Nerve,
        id: key.into(),
        host: format!("{key}.example"),
        port: Some(80),
        ssl_port: None,
        serving,
        weight,
        shard: None,
        labels,
        endpoints: Default::default(),
        data: Default::default(),
    })
}

fn list(serving: &[bool]) -> Vec<Arc<Instance>> {
    serving.iter().enumerate().map(|(n, s)| instance(&format!("i{n:03}"), *s, None, "a")).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Round robin visits every serving instance exactly once per cycle.
    #[test]
    fn round_robin_visits_every_serving_instance_once_per_cycle(
        serving in proptest::collection::vec(any::<bool>(), 1..40), start in 0u64..1000
    ) {
        let instances = list(&serving);
        let selector = Selector::new(Strategy::RoundRobin);
        selector.counter.store(start, Ordering::Relaxed);
        let expected: Vec<&str> = instances.iter().filter(|i| i.serving).map(|i| i.key.as_str()).collect();
        if expected.is_empty() {
            prop_assert_eq!(selector.pick(&instances).unwrap_err(), NoInstance::NoneServing);
            return Ok(());
        }
        let mut seen: Vec<String> = (0..expected.len()).map(|_| selector.pick(&instances).unwrap().key.clone()).collect();
        seen.sort();
        prop_assert_eq!(seen, expected);
    }

    /// Sticky never moves while its instance is eligible, whatever the
    /// rest of the list does.
    #[test]
    fn sticky_never_moves_while_its_instance_serves(
        changes in proptest::collection::vec(proptest::collection::vec(any::<bool>(), 1..20), 1..20), seed in any::<u64>()
    ) {
        let selector = Selector::new(Strategy::Sticky).seed(seed);
        let first = list(&[true; 5]);
        let stuck = selector.pick(&first).unwrap();
        for serving in changes {
            // Another membership, always with the stuck instance serving.
            let mut instances = list(&serving);
            instances.retain(|i| i.key != stuck.key);
            instances.push(stuck.clone());
            instances.sort_by(|a, b| a.key.cmp(&b.key));
            prop_assert_eq!(&selector.pick(&instances).unwrap().key, &stuck.key);
        }
    }

    /// A failing instance is never picked outside panic mode.
    #[test]
    fn failing_instances_are_never_picked(
        failing in proptest::collection::vec(any::<bool>(), 1..20), strategy in 0usize..5, seed in any::<u64>()
    ) {
        let strategy = [Strategy::Random, Strategy::RoundRobin, Strategy::Weighted, Strategy::Sticky, Strategy::PowerOfTwo][strategy];
        let instances = list(&vec![true; failing.len()]);
        let selector = Selector::new(strategy).seed(seed);
        let now = Instant::now();
        for (instance, fails) in instances.iter().zip(&failing) {
            if *fails {
                selector.note_error_at(instance, now);
                selector.note_error_at(instance, now);
            }
        }
        for _ in 0..50 {
            match selector.pick_at(&instances, now) {
                Ok(picked) => {
                    let index = instances.iter().position(|i| i.key == picked.key).unwrap();
                    prop_assert!(!failing[index], "picked failing {}", picked.key);
                }
                Err(none) => prop_assert!(failing.iter().all(|f| *f) && none == NoInstance::AllFailing),
            }
        }
    }
}

#[test]
fn weighted_converges_to_the_weights_over_100_000_picks() {
    let weights = [1u32, 2, 3, 4];
    let instances: Vec<_> =
        weights.iter().enumerate().map(|(n, w)| instance(&format!("w{n}"), true, Some(*w), "a")).collect();
    let selector = Selector::new(Strategy::Weighted).seed(7);
    let mut counts = [0u32; 4];
    for _ in 0..100_000 {
        let picked = selector.pick(&instances).unwrap();
        counts[instances.iter().position(|i| i.key == picked.key).unwrap()] += 1;
    }
    for (count, weight) in counts.iter().zip(weights) {
        let share = f64::from(*count) / 100_000.0;
        let expected = f64::from(weight) / 10.0;
        // Tolerance: within 1.5 percentage points (about 10 standard
        // deviations of a binomial share at this size).
        assert!((share - expected).abs() < 0.015, "weight {weight}: {share:.4} vs {expected}");
    }
}

#[test]
fn errors_expire_exactly_and_a_success_clears_them() {
    let instances = list(&[true, true]);
    let selector = Selector::new(Strategy::RoundRobin);
    let t0 = Instant::now();
    selector.note_error_at(&instances[0], t0);
    assert!(!selector.is_failing(&selector.lock(), &instances[0], t0), "one error does not exclude");
    selector.note_error_at(&instances[0], t0 + Duration::from_secs(10));
    let failing_at = |t| selector.is_failing(&selector.lock(), &instances[0], t);
    assert!(failing_at(t0 + Duration::from_secs(39)), "excluded until 30 s after the last error");
    assert!(!failing_at(t0 + Duration::from_secs(40)), "and not a moment longer");
    selector.note_error_at(&instances[0], t0 + Duration::from_secs(50));
    assert!(!failing_at(t0 + Duration::from_secs(50)), "two errors 40 s apart are not within 30 s");
    selector.note_error_at(&instances[0], t0 + Duration::from_secs(51));
    assert!(failing_at(t0 + Duration::from_secs(51)));
    selector.note_success(&instances[0]);
    assert!(!failing_at(t0 + Duration::from_secs(51)), "a success clears the errors");
}

#[test]
fn zone_preference_falls_back_and_panic_mode_uses_failing_ones() {
    let a = instance("a1", true, None, "a");
    let b = instance("b1", true, None, "b");
    let selector = Selector::new(Strategy::Random).prefer_zone("zone", "a").seed(1);
    for _ in 0..20 {
        assert_eq!(selector.pick(&[a.clone(), b.clone()]).unwrap().key, "a1");
    }
    let now = Instant::now();
    selector.note_error_at(&a, now);
    selector.note_error_at(&a, now);
    assert_eq!(
        selector.pick_at(&[a.clone(), b.clone()], now).unwrap().key,
        "b1",
        "falls back to another zone"
    );
    selector.note_error_at(&b, now);
    selector.note_error_at(&b, now);
    assert_eq!(selector.pick_at(&[a.clone(), b.clone()], now).unwrap_err(), NoInstance::AllFailing);
    let panicking = Selector::new(Strategy::Random).panic_mode(true);
    panicking.note_error_at(&a, now);
    panicking.note_error_at(&a, now);
    assert_eq!(panicking.pick_at(std::slice::from_ref(&a), now).unwrap().key, "a1");
}

/// Also: two lists made one after the other may reuse addresses; the
/// second must not be taken for the first (the cache holds its list).
#[test]
fn no_instance_says_why() {
    let selector = Selector::new(Strategy::RoundRobin).label("zone", "c", true);
    assert_eq!(selector.pick(&[]).unwrap_err(), NoInstance::Empty);
    assert_eq!(selector.pick(&list(&[false])).unwrap_err(), NoInstance::NoneServing);
    assert_eq!(selector.pick(&list(&[true])).unwrap_err(), NoInstance::NoneMatches);
    let not_c = Selector::new(Strategy::RoundRobin).label("zone", "c", false);
    assert!(not_c.pick(&list(&[true])).is_ok());
}

#[test]
fn the_last_non_empty_list_and_damped_removals_are_kept_only_when_asked() {
    let two = list(&[true, true]);
    let plain = Selector::new(Strategy::RoundRobin);
    plain.pick(&two).unwrap();
    assert_eq!(plain.pick(&[]).unwrap_err(), NoInstance::Empty, "off by default");

    let keeping = Selector::new(Strategy::RoundRobin).keep_last_non_empty(true);
    keeping.pick(&two).unwrap();
    assert!(keeping.pick(&[]).is_ok(), "an empty list keeps the last one");
    let one = list(&[true]);
    keeping.pick(&one).unwrap();
    assert_eq!(keeping.pick(&[]).unwrap().key, "i000", "the last non-empty one");

    let damped = Selector::new(Strategy::RoundRobin).damp_removals(Duration::from_secs(10));
    let t0 = Instant::now();
    damped.pick_at(&two, t0).unwrap();
    let picks: Vec<_> =
        (0..4).map(|_| damped.pick_at(&one, t0 + Duration::from_secs(1)).unwrap().key.clone()).collect();
    assert!(picks.contains(&"i001".to_string()), "a removal is damped: {picks:?}");
    let later: Vec<_> =
        (0..4).map(|_| damped.pick_at(&one, t0 + Duration::from_secs(11)).unwrap().key.clone()).collect();
    assert!(later.iter().all(|k| k == "i000"), "and gone after the window: {later:?}");
}

#[test]
fn power_of_two_prefers_the_less_loaded() {
    let instances = list(&[true, true]);
    let selector = Selector::new(Strategy::PowerOfTwo).seed(3);
    let _busy = (0..5).map(|_| selector.begin(&instances[0])).collect::<Vec<_>>();
    for _ in 0..20 {
        assert_eq!(selector.pick(&instances).unwrap().key, "i001");
    }
}
