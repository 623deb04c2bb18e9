//! Waiting for conditions with a deadline, and unique sandbox paths.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A condition that did not hold before its deadline.
#[derive(Debug, thiserror::Error)]
#[error("timed out after {waited:?} waiting for: {what}")]
pub struct TimedOut {
    /// The condition's description.
    pub what: String,
    /// How long it was polled.
    pub waited: Duration,
}

/// Scales a test timeout by `NDSR_TEST_TIMING` (a float, default 1), like
/// Curator's `Timing`: slow machines set it above 1 instead of editing tests.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// // With NDSR_TEST_TIMING unset, durations are unchanged.
/// # std::env::remove_var("NDSR_TEST_TIMING");
/// assert_eq!(ndsr_testkit::scaled(Duration::from_secs(2)), Duration::from_secs(2));
/// ```
pub fn scaled(d: Duration) -> Duration {
    let factor = std::env::var("NDSR_TEST_TIMING")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|f| f.is_finite() && *f > 0.0)
        .unwrap_or(1.0);
    d.mul_f64(factor)
}

/// Polls `condition` every 20 ms until it returns `true`, or fails after
/// `within` (scaled by [`scaled`]). Use it instead of sleeping.
///
/// # Errors
/// [`TimedOut`] naming `what`.
///
/// # Example
///
/// ```no_run
/// # async fn demo(client: zookeeper_client::Client) -> Result<(), ndsr_testkit::TimedOut> {
/// use std::time::Duration;
/// ndsr_testkit::eventually(Duration::from_secs(5), "node /a exists", || async {
///     matches!(client.check_stat("/a").await, Ok(Some(_)))
/// })
/// .await?;
/// # Ok(()) }
/// ```
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut condition: F) -> Result<(), TimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let within = scaled(within);
    let start = Instant::now();
    loop {
        if condition().await {
            return Ok(());
        }
        if start.elapsed() >= within {
            return Err(TimedOut { what: what.to_string(), waited: start.elapsed() });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A ZooKeeper path unique to this call: `/ndsr-test/<name>-<pid>-<n>-<t>`,
/// so tests sharing a server never see each other's nodes.
///
/// # Example
///
/// ```
/// let a = ndsr_testkit::unique_path("watch");
/// let b = ndsr_testkit::unique_path("watch");
/// assert!(a.starts_with("/ndsr-test/watch-"));
/// assert_ne!(a, b);
/// ```
pub fn unique_path(name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let name: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    format!("/ndsr-test/{name}-{}-{n}-{nanos}", std::process::id())
}
