//! Jittered exponential back-off for reconnecting, reset after calm.

use std::time::{Duration, Instant};

use rand::Rng;

/// Doubles from `base` up to `max`, each delay drawn uniformly from
/// [delay/2, delay] so that a fleet that lost the same server does not
/// reconnect in lock-step (apache/curator#840). Resets once the last
/// success has lasted `calm`.
#[derive(Debug)]
pub(crate) struct Backoff {
    base: Duration,
    max: Duration,
    calm: Duration,
    next: Duration,
    last_success: Option<Instant>,
}

impl Backoff {
    pub(crate) fn new(base: Duration, max: Duration, calm: Duration) -> Backoff {
        Backoff { base, max, calm, next: base, last_success: None }
    }

    /// The delay before the next attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        if self.last_success.take().is_some_and(|at| at.elapsed() >= self.calm) {
            self.next = self.base;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        let low = delay / 2;
        low + rand::thread_rng().gen_range(Duration::ZERO..=delay - low)
    }

    /// Records a success; the back-off resets if it lasts `calm`.
    pub(crate) fn succeeded(&mut self) {
        self.last_success = Some(Instant::now());
    }
}

/// The pause before rebuilding a session after it expired: uniform in
/// [0, `max`] (see `RegistryBuilder::rebuild_jitter`; by default
/// min(session timeout / 8, 500 ms), 250 ms on average at most). A fleet
/// whose sessions expired together (a partition healed, a quorum restored)
/// then does not reconnect and re-register in one burst.
pub(crate) fn rebuild_jitter(max: Duration) -> Duration {
    rand::thread_rng().gen_range(Duration::ZERO..=max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebuild_jitter_stays_within_its_ceiling_and_spreads() {
        let max =
            |session| crate::RegistryBuilder::new("h:1").session_timeout(session).rebuild_jitter_or_default();
        assert_eq!(max(Duration::from_secs(2)), Duration::from_millis(250));
        assert_eq!(max(Duration::from_secs(60)), Duration::from_millis(500));
        let set =
            crate::RegistryBuilder::new("h:1").rebuild_jitter(Duration::ZERO).rebuild_jitter_or_default();
        assert_eq!(set, Duration::ZERO);
        let draws: Vec<Duration> = (0..200).map(|_| rebuild_jitter(Duration::from_millis(250))).collect();
        assert!(draws.iter().all(|d| *d <= Duration::from_millis(250)));
        assert!(draws.iter().any(|d| *d < Duration::from_millis(125)));
        assert!(draws.iter().any(|d| *d > Duration::from_millis(125)));
        assert_eq!(rebuild_jitter(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn grows_within_jitter_bounds_up_to_max() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1), Duration::from_secs(10));
        let mut ceiling = Duration::from_millis(100);
        for _ in 0..8 {
            let d = b.next_delay();
            assert!(d >= ceiling / 2 && d <= ceiling, "{d:?} not in [{:?}, {ceiling:?}]", ceiling / 2);
            ceiling = (ceiling * 2).min(Duration::from_secs(1));
        }
    }

    #[test]
    fn a_short_success_does_not_reset_but_a_calm_one_does() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1), Duration::ZERO);
        for _ in 0..5 {
            b.next_delay();
        }
        b.succeeded();
        assert!(b.next_delay() <= Duration::from_millis(100), "calm (0 s) success resets");
        let mut b =
            Backoff::new(Duration::from_millis(100), Duration::from_secs(1), Duration::from_secs(3600));
        for _ in 0..5 {
            b.next_delay();
        }
        b.succeeded();
        assert!(b.next_delay() >= Duration::from_millis(500), "a brief success keeps backing off");
    }
}
