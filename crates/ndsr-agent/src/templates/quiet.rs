//! `wait = "MIN:MAX"` (consul-template's quiescence): a changed file is
//! written once its rendered bytes have stayed the same for MIN, and at
//! the latest MAX after they first changed, so that a burst of changes
//! makes one write (and one command).

use std::time::Duration;

use tokio::time::Instant;

/// A template's `wait`: the quiet period and its bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wait {
    /// Write once the output has not changed for this long.
    pub min: Duration,
    /// Write at the latest this long after the first change held.
    pub max: Duration,
}

impl Wait {
    /// Reads `"2s:10s"`, or `"2s"` (the maximum is then 4 times the
    /// minimum, as consul-template's).
    pub fn parse(text: &str) -> Result<Wait, String> {
        let duration = |part: &str| {
            humantime::parse_duration(part.trim())
                .map_err(|e| format!("wait {text:?}: {part:?} is not a duration like \"2s\" ({e})"))
        };
        let (min, max) = match text.split_once(':') {
            Some((min, max)) => (duration(min)?, duration(max)?),
            None => {
                let min = duration(text)?;
                (min, min.saturating_mul(4))
            }
        };
        if min.is_zero() {
            return Err(format!(
                "wait {text:?}: the minimum must be above 0 (leave `wait` out to write at once)"
            ));
        }
        if max < min {
            return Err(format!("wait {text:?}: the maximum is below the minimum"));
        }
        Ok(Wait { min, max })
    }
}

impl<'de> serde::Deserialize<'de> for Wait {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Wait, D::Error> {
        let text = String::deserialize(d)?;
        Wait::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// When a held output changed first and last.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Quiet {
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Quiet {
    /// The output changed (again) at `now`.
    pub(super) fn change(&mut self, now: Instant) {
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    /// When the held output is to be written: `min` after its last change,
    /// at the latest `max` after its first; `None` when nothing is held.
    pub(super) fn due(&self, wait: Wait) -> Option<Instant> {
        Some(later(self.last?, wait.min).min(later(self.first?, wait.max)))
    }
}

/// `at + wait`, or (a `wait` too long for an instant, as "300000000000y")
/// 30 years after `at`: never, in practice.
fn later(at: Instant, wait: Duration) -> Instant {
    const NEVER: Duration = Duration::from_secs(30 * 365 * 86_400);
    at.checked_add(wait).unwrap_or_else(|| at + NEVER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_consul_template() {
        let s = Duration::from_secs;
        assert_eq!(Wait::parse("2s:10s"), Ok(Wait { min: s(2), max: s(10) }));
        assert_eq!(Wait::parse("2s"), Ok(Wait { min: s(2), max: s(8) }));
        assert_eq!(Wait::parse("500ms:1m"), Ok(Wait { min: Duration::from_millis(500), max: s(60) }));
        assert!(Wait::parse("10s:2s").unwrap_err().contains("below the minimum"));
        assert!(Wait::parse("0s").unwrap_err().contains("above 0"));
        assert!(Wait::parse("2x").unwrap_err().contains("not a duration"));
        assert!(Wait::parse("2s:").unwrap_err().contains("not a duration"));
    }

    #[test]
    fn quiet_after_the_minimum_at_the_latest_after_the_maximum() {
        let wait = Wait { min: Duration::from_secs(2), max: Duration::from_secs(10) };
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let mut quiet = Quiet::default();
        assert_eq!(quiet.due(wait), None, "nothing held");
        quiet.change(at(0));
        assert_eq!(quiet.due(wait), Some(at(2)));
        quiet.change(at(1));
        assert_eq!(quiet.due(wait), Some(at(3)), "each change restarts the quiet period");
        for second in 2..=9 {
            quiet.change(at(second));
        }
        assert_eq!(quiet.due(wait), Some(at(10)), "never later than the maximum after the first change");
    }

    #[test]
    fn a_huge_wait_is_never_not_a_panic() {
        let start = Instant::now();
        let mut quiet = Quiet::default();
        quiet.change(start);
        for text in ["300000000000y", "300000000000y:300000000001y", "1s:300000000000y"] {
            let wait = Wait::parse(text).unwrap();
            let due = quiet.due(wait).unwrap();
            assert!(due >= start + Duration::from_secs(1), "{text}: {due:?}");
        }
        let huge = Wait::parse("300000000000y").unwrap();
        let due = quiet.due(huge).unwrap();
        assert!(due > start + Duration::from_secs(20 * 365 * 86_400), "{due:?}");
        let max = Wait { min: Duration::MAX, max: Duration::MAX };
        assert!(quiet.due(max).unwrap() > start + Duration::from_secs(20 * 365 * 86_400));
    }
}
