//! Monitoring: the registry's counters and gauges ([`Registry::stats`]).

use super::Registry;
use crate::session::State;

impl Registry {
    /// Counters and gauges for monitoring: connection state, requests,
    /// reconnects, expiries, watched paths, registrations and callback
    /// errors. Cheap: no ZooKeeper call.
    pub fn stats(&self) -> crate::Stats {
        use std::sync::atomic::Ordering::Relaxed;
        let state = self.state();
        let counters = &self.shared.counters;
        crate::Stats {
            state,
            disconnected_since: (state != State::Connected && state != State::Closed)
                .then(|| self.shared.session.borrow().since),
            requests: self.zk_requests(),
            reconnects: counters.reconnects.load(Relaxed),
            expiries: counters.expiries.load(Relaxed),
            watched_paths: counters.watched_paths.load(Relaxed),
            registrations: counters.registrations.load(Relaxed),
            registrations_given_up: counters.registrations_given_up.load(Relaxed),
            callback_errors: counters.callback_errors.load(Relaxed),
            history_rewinds: counters.history_rewinds.load(Relaxed),
            config_rejections: counters.config_rejections.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_write_is_a_rewind_only_below_what_was_seen_before_it_was_sent() {
        let registry = Registry::builder("127.0.0.1:1").lazy(true).build().await.unwrap();
        let shared = &registry.shared;
        shared.saw_zxid(100);
        let floor = shared.zxid_floor();
        // A read that lands while our write is in flight sees a later zxid:
        // our write (120) is still ZooKeeper's present, not a rewind.
        shared.saw_zxid(150);
        shared.wrote_at("/a", floor, 120);
        assert_eq!(registry.stats().history_rewinds, 0);
        // A write older than what was seen before it was sent is one.
        let floor = shared.zxid_floor();
        shared.wrote_at("/a", floor, 7);
        assert_eq!(registry.stats().history_rewinds, 1);
        // Said once per session; history starts again from there.
        shared.wrote_at("/a", shared.zxid_floor(), 8);
        shared.wrote_at("/a", 100, 9);
        assert_eq!(registry.stats().history_rewinds, 1);
        registry.close().await;
    }
}
