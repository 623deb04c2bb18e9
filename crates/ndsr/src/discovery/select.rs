//! Picking one instance of a service: filters, then a strategy, with the
//! client's own failure reports.
//!
//! Filters come first: serving instances only (Curator `enabled`, Spring
//! `instance_status`, ServerSet `ALIVE`), label predicates (synapse's
//! `label_filters`), a preferred zone that falls back to every zone, and
//! instances the client reported failing ([`Selector::note_error`]:
//! Curator's default of 2 errors within 30 s, but any success clears them
//! and the exclusion ends exactly `window` after the last counted error).
//! The strategy then picks among what is left, in the list's stable order
//! (by node name). "No instance" is an explicit answer, never a panic.
//! Which instances are eligible is worked out once per list (and again
//! when errors are reported or an exclusion ends), so a pick costs a
//! comparison of the list's pointers and a choice, and allocates nothing;
//! `keep_last_non_empty` and `damp_removals` (both off by default) also
//! copy the list when it changes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::Instance;

/// How to choose among the eligible instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Strategy {
    /// Uniformly at random.
    Random,
    /// In turn, in the list's order (by node name); a 64-bit counter, so
    /// no overflow (Curator's `abs(int) % n` fails after 2^31 picks).
    RoundRobin,
    /// At random, in proportion to each instance's weight (1 when it has
    /// none; 0 is never picked while another has weight).
    Weighted,
    /// The same instance (by node name) while it stays eligible; another
    /// at random when it goes, is drained or is excluded.
    Sticky,
    /// Two at random, the one with fewer calls in flight
    /// ([`Selector::begin`]), then fewer recent errors.
    PowerOfTwo,
}

impl std::str::FromStr for Strategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Strategy, String> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "random" => Ok(Strategy::Random),
            "round-robin" | "roundrobin" | "rr" => Ok(Strategy::RoundRobin),
            "weighted" => Ok(Strategy::Weighted),
            "sticky" => Ok(Strategy::Sticky),
            "power-of-two" | "p2c" | "least-loaded" => Ok(Strategy::PowerOfTwo),
            other => Err(format!(
                "unknown strategy `{other}` (random, round-robin, weighted, sticky, power-of-two)"
            )),
        }
    }
}

/// Why no instance was picked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoInstance {
    /// The service has no instances.
    #[error("the service has no instances")]
    Empty,
    /// None of its instances serves (all drained).
    #[error("no instance of the service is serving")]
    NoneServing,
    /// None matches the label filters.
    #[error("no serving instance matches the filters")]
    NoneMatches,
    /// Every match was reported failing (and panic mode is off).
    #[error("every matching instance was reported failing recently")]
    AllFailing,
}

/// A label predicate (synapse's `label_filters`): equal, or not equal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LabelFilter {
    /// The label.
    pub label: String,
    /// The value compared with.
    pub value: String,
    /// `true`: the label must equal the value; `false`: must not (a missing
    /// label is not equal).
    pub equals: bool,
}

/// Chooses instances of one service; cheap to share (`Arc`) between
/// threads.
///
/// ```
/// use ndsr::discovery::{Selector, Strategy};
/// let selector = Selector::new(Strategy::RoundRobin).prefer_zone("zone", "a");
/// # let instances: Vec<std::sync::Arc<ndsr::discovery::Instance>> = Vec::new();
/// match selector.pick(&instances) {
///     Ok(instance) => println!("{}", instance.address()),
///     Err(none) => eprintln!("{none}"),
/// }
/// ```
#[derive(Debug)]
pub struct Selector {
    strategy: Strategy,
    serving_only: bool,
    labels: Vec<LabelFilter>,
    zone: Option<(String, String)>,
    threshold: u32,
    window: Duration,
    panic_mode: bool,
    keep_last: bool,
    damping: Duration,
    counter: AtomicU64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    rng: StdRng,
    /// The sticky instance: its index in the last list, and its name.
    sticky: Option<(usize, String)>,
    /// Bumped on every error or success report (eligibility may change).
    version: u64,
    cache: Option<Cache>,
    /// Per instance (node name): the times of its last errors, newest last.
    errors: HashMap<String, Vec<Instant>>,
    in_flight: HashMap<String, Arc<AtomicUsize>>,
    /// The last list given (for `keep_last_non_empty` and damping).
    last: Vec<Arc<Instance>>,
    /// Instances gone from the list, and when (for damping).
    gone: Vec<(Arc<Instance>, Instant)>,
}

impl Selector {
    /// A selector with `strategy`, serving instances only, Curator's
    /// failure policy (2 errors within 30 s), no panic mode.
    pub fn new(strategy: Strategy) -> Selector {
        Selector {
            strategy,
            serving_only: true,
            labels: Vec::new(),
            zone: None,
            threshold: 2,
            window: Duration::from_secs(30),
            panic_mode: false,
            keep_last: false,
            damping: Duration::ZERO,
            counter: AtomicU64::new(0),
            state: Mutex::new(State {
                rng: StdRng::from_entropy(),
                sticky: None,
                version: 0,
                cache: None,
                errors: HashMap::new(),
                in_flight: HashMap::new(),
                last: Vec::new(),
                gone: Vec::new(),
            }),
        }
    }

    /// Seeds the random choices (for reproducible tests).
    pub fn seed(self, seed: u64) -> Selector {
        self.lock().rng = StdRng::seed_from_u64(seed);
        self
    }

    /// Also picks instances that do not serve (drained).
    pub fn include_draining(mut self) -> Selector {
        self.serving_only = false;
        self
    }

    /// Only instances whose `label` equals (`equals`) or differs from
    /// `value`; every filter must hold.
    pub fn label(mut self, label: &str, value: &str, equals: bool) -> Selector {
        self.labels.push(LabelFilter { label: label.into(), value: value.into(), equals });
        self
    }

    /// Prefers instances whose `label` is `zone`; falls back to every zone
    /// when none there is eligible.
    pub fn prefer_zone(mut self, label: &str, zone: &str) -> Selector {
        self.zone = Some((label.into(), zone.into()));
        self
    }

    /// An instance with `errors` reports within `window` is skipped until
    /// `window` after the last of them (default 2 within 30 s; 0 errors:
    /// never skipped).
    pub fn failures(mut self, errors: u32, window: Duration) -> Selector {
        self.threshold = errors;
        self.window = window;
        self
    }

    /// When every match is reported failing, pick among them anyway rather
    /// than answer [`NoInstance::AllFailing`].
    pub fn panic_mode(mut self, on: bool) -> Selector {
        self.panic_mode = on;
        self
    }

    /// When a list comes empty (every instance gone at once, as after an
    /// outage of the registry's own), keep picking from the last non-empty
    /// one (synapse's `use_previous_backends`). Off by default.
    pub fn keep_last_non_empty(mut self, on: bool) -> Selector {
        self.keep_last = on;
        self
    }

    /// Keeps an instance that left the list eligible for `window` after it
    /// left (Finagle's stabilizer for removals), so that a flapping member
    /// does not reshuffle every client. Off (zero) by default.
    pub fn damp_removals(mut self, window: Duration) -> Selector {
        self.damping = window;
        self
    }

    /// Notes the list given now; returns the one to pick from when it
    /// differs (kept or damped), `None` to use the given list.
    fn remember(
        &self,
        state: &mut State,
        instances: &[Arc<Instance>],
        now: Instant,
    ) -> Option<Vec<Arc<Instance>>> {
        let same = state.last.len() == instances.len()
            && state.last.iter().zip(instances).all(|(a, b)| Arc::ptr_eq(a, b) || a == b);
        if !same {
            if self.damping > Duration::ZERO {
                let left = state.last.iter().filter(|old| !instances.iter().any(|i| i.key == old.key));
                let left: Vec<_> = left.map(|old| (old.clone(), now)).collect();
                state.gone.extend(left);
            }
            if !(self.keep_last && instances.is_empty()) {
                state.last = instances.to_vec();
            }
        }
        let damping = self.damping;
        state.gone.retain(|(i, at)| {
            now.saturating_duration_since(*at) < damping && !instances.iter().any(|n| n.key == i.key)
        });
        let base = if self.keep_last && instances.is_empty() { &state.last[..] } else { instances };
        if state.gone.is_empty() {
            return (base.len() != instances.len()).then(|| base.to_vec());
        }
        let mut merged: Vec<_> =
            base.iter().cloned().chain(state.gone.iter().map(|(i, _)| i.clone())).collect();
        merged.sort_by(|a, b| a.key.cmp(&b.key));
        Some(merged)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reports a failed call to `instance`.
    pub fn note_error(&self, instance: &Instance) {
        self.note_error_at(instance, Instant::now());
    }

    /// [`note_error`](Self::note_error) at a given time (for tests).
    pub fn note_error_at(&self, instance: &Instance, now: Instant) {
        let keep = self.threshold.max(1) as usize;
        let mut state = self.lock();
        state.version += 1;
        let errors = state.errors.entry(instance.key.clone()).or_default();
        errors.push(now);
        if errors.len() > keep {
            errors.remove(0);
        }
    }

    /// Reports a successful call: the instance's errors are forgotten.
    pub fn note_success(&self, instance: &Instance) {
        let mut state = self.lock();
        if state.errors.remove(&instance.key).is_some() {
            state.version += 1;
        }
    }

    /// Counts a call to `instance` as in flight until the guard is dropped
    /// (what [`Strategy::PowerOfTwo`] compares).
    pub fn begin(&self, instance: &Instance) -> InFlight {
        let count = self.lock().in_flight.entry(instance.key.clone()).or_default().clone();
        count.fetch_add(1, Ordering::Relaxed);
        InFlight(count)
    }

    /// Picks one instance.
    ///
    /// # Errors
    /// [`NoInstance`] when none is eligible, saying why.
    pub fn pick(&self, instances: &[Arc<Instance>]) -> Result<Arc<Instance>, NoInstance> {
        self.pick_at(instances, Instant::now())
    }

    /// [`pick`](Self::pick) at a given time (for tests).
    ///
    /// # Errors
    /// As [`pick`](Self::pick).
    pub fn pick_at(&self, instances: &[Arc<Instance>], now: Instant) -> Result<Arc<Instance>, NoInstance> {
        let mut state = self.lock();
        let replaced = if self.keep_last || self.damping > Duration::ZERO {
            self.remember(&mut state, instances, now)
        } else {
            None
        };
        let instances = replaced.as_deref().unwrap_or(instances);
        if instances.is_empty() {
            return Err(NoInstance::Empty);
        }
        // Which instances are eligible is worked out once per list (and
        // again when errors are reported or an exclusion ends); a pick then
        // costs a comparison of the list's pointers and a choice.
        let fresh = state.cache.as_ref().is_some_and(|c| c.holds(instances, state.version, now));
        if !fresh {
            let cache = self.eligible(&state, instances, now);
            state.cache = Some(cache);
        }
        let cache = state.cache.take().unwrap_or_default();
        let picked = match cache.outcome {
            Err(none) => Err(none),
            Ok(()) => Ok(self.choose(&mut state, instances, &cache)),
        };
        state.cache = Some(cache);
        picked
    }

    /// Works out the eligible instances of `instances`: the best tier that
    /// has any (in the zone and healthy, healthy anywhere, then in panic
    /// mode failing ones), or why there is none.
    fn eligible(&self, state: &State, instances: &[Arc<Instance>], now: Instant) -> Cache {
        let serving = |i: &Instance| !self.serving_only || i.serving;
        let matching = |i: &Instance| serving(i) && self.labels.iter().all(|f| label_holds(f, i));
        let in_zone = |i: &Instance| {
            self.zone.as_ref().is_none_or(|(label, zone)| i.labels.get(label).is_some_and(|v| v == zone))
        };
        // Failing now, and until when (a change of eligibility).
        let mut valid_until: Option<Instant> = None;
        let failing: Vec<bool> = instances
            .iter()
            .map(|i| match self.failing_until(state, i, now) {
                Some(until) => {
                    valid_until = Some(valid_until.map_or(until, |v| v.min(until)));
                    true
                }
                None => false,
            })
            .collect();
        let tiers: [&Tier<'_>; 3] = [
            &|n, i| matching(i) && in_zone(i) && !failing[n],
            &|n, i| matching(i) && !failing[n],
            &|_, i| matching(i),
        ];
        let mut cache =
            Cache { list: instances.to_vec(), version: state.version, valid_until, ..Cache::default() };
        for (tier, eligible) in tiers.iter().enumerate() {
            if tier == 2 && !self.panic_mode {
                break;
            }
            let indices: Vec<u32> =
                (0..instances.len()).filter(|n| eligible(*n, &instances[*n])).map(|n| n as u32).collect();
            if !indices.is_empty() {
                if self.strategy == Strategy::Weighted {
                    let mut total = 0u64;
                    cache.prefix = indices
                        .iter()
                        .map(|n| {
                            total += u64::from(instances[*n as usize].weight.unwrap_or(1));
                            total
                        })
                        .collect();
                }
                cache.eligible = indices;
                cache.outcome = Ok(());
                return cache;
            }
        }
        cache.outcome = Err(if !instances.iter().any(|i| serving(i)) {
            NoInstance::NoneServing
        } else if !instances.iter().any(|i| matching(i)) {
            NoInstance::NoneMatches
        } else {
            NoInstance::AllFailing
        });
        cache
    }

    /// Until when `instance` is skipped for its reported errors, if it is
    /// now.
    fn failing_until(&self, state: &State, instance: &Instance, now: Instant) -> Option<Instant> {
        if self.threshold == 0 || state.errors.is_empty() {
            return None;
        }
        let errors = state.errors.get(&instance.key)?;
        // The last `threshold` errors all within one window, the last of
        // them less than `window` ago.
        let (first, last) = (errors.first()?, errors.last()?);
        let counted =
            errors.len() >= self.threshold as usize && last.saturating_duration_since(*first) < self.window;
        let until = *last + self.window;
        (counted && now < until).then_some(until)
    }

    #[cfg(test)]
    fn is_failing(&self, state: &State, instance: &Instance, now: Instant) -> bool {
        self.failing_until(state, instance, now).is_some()
    }

    /// Chooses among the cached eligible instances.
    fn choose(&self, state: &mut State, instances: &[Arc<Instance>], cache: &Cache) -> Arc<Instance> {
        let count = cache.eligible.len();
        let at = |k: usize| {
            let n = cache.eligible.get(k).copied().unwrap_or(0) as usize;
            instances.get(n).unwrap_or(&instances[0]).clone()
        };
        match self.strategy {
            Strategy::Random => {
                let k = state.rng.gen_range(0..count);
                at(k)
            }
            Strategy::RoundRobin => {
                let turn = self.counter.fetch_add(1, Ordering::Relaxed);
                at((turn % count as u64) as usize)
            }
            Strategy::Weighted => {
                let total = cache.prefix.last().copied().unwrap_or(0);
                if total == 0 {
                    let k = state.rng.gen_range(0..count);
                    return at(k);
                }
                let point = state.rng.gen_range(0..total);
                // The first instance whose cumulative weight passes `point`.
                at(cache.prefix.partition_point(|cumulative| *cumulative <= point))
            }
            Strategy::Sticky => {
                if let Some((index, key)) = &state.sticky {
                    // The same list (by pointers) keeps its indices; another
                    // one is searched once.
                    let found = match instances.get(*index) {
                        Some(i) if &i.key == key => Some(*index),
                        _ => instances.iter().position(|i| &i.key == key),
                    };
                    if let Some(n) = found {
                        if cache.eligible.binary_search(&(n as u32)).is_ok() {
                            if n != *index {
                                state.sticky = Some((n, key.clone()));
                            }
                            return instances[n].clone();
                        }
                    }
                }
                let k = state.rng.gen_range(0..count);
                let chosen = at(k);
                let n = cache.eligible.get(k).copied().unwrap_or(0) as usize;
                state.sticky = Some((n, chosen.key.clone()));
                chosen
            }
            Strategy::PowerOfTwo => {
                let a = state.rng.gen_range(0..count);
                let b = if count > 1 { (a + state.rng.gen_range(1..count)) % count } else { a };
                let (a, b) = (at(a), at(b));
                let load = |state: &State, i: &Instance| {
                    let in_flight = state.in_flight.get(&i.key).map_or(0, |c| c.load(Ordering::Relaxed));
                    let errors = state.errors.get(&i.key).map_or(0, Vec::len);
                    (in_flight, errors)
                };
                if load(state, &b) < load(state, &a) {
                    b
                } else {
                    a
                }
            }
        }
    }
}

/// Whether the `n`th instance is in a tier of eligibility.
type Tier<'a> = dyn Fn(usize, &Instance) -> bool + 'a;

/// The eligible instances of the last list picked from.
#[derive(Debug)]
struct Cache {
    /// The list worked out: held, so that an unchanged list is recognised
    /// by pointer (an address cannot be reused while it is held).
    list: Vec<Arc<Instance>>,
    /// `State::version` when worked out.
    version: u64,
    /// When an exclusion ends (eligibility changes then).
    valid_until: Option<Instant>,
    /// Indices of the eligible instances, ascending.
    eligible: Vec<u32>,
    /// Cumulative weights over `eligible` (weighted strategy).
    prefix: Vec<u64>,
    /// Why none is eligible, if none is.
    outcome: Result<(), NoInstance>,
}

impl Default for Cache {
    fn default() -> Cache {
        Cache {
            list: Vec::new(),
            version: 0,
            valid_until: None,
            eligible: Vec::new(),
            prefix: Vec::new(),
            outcome: Err(NoInstance::Empty),
        }
    }
}

impl Cache {
    fn holds(&self, instances: &[Arc<Instance>], version: u64, now: Instant) -> bool {
        self.version == version
            && self.valid_until.is_none_or(|until| now < until)
            && self.list.len() == instances.len()
            && self.list.iter().zip(instances).all(|(held, i)| Arc::ptr_eq(held, i))
    }
}

fn label_holds(filter: &LabelFilter, instance: &Instance) -> bool {
    let equal = instance.labels.get(&filter.label).is_some_and(|v| *v == filter.value);
    equal == filter.equals
}

/// A call in flight (see [`Selector::begin`]); ends when dropped.
#[derive(Debug)]
pub struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
#[path = "select_tests.rs"]
mod tests;
