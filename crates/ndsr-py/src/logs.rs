//! Log events of the Rust core, queued for Python's `logging`.
//!
//! A tracing layer turns each event into (level, target, message) and puts
//! it on a bounded queue; a Python thread drains it ([`drain`]) and emits
//! the records. No Rust thread ever takes the GIL to log, and a process
//! that never drains loses the oldest records, never blocks.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Condvar, Mutex, Once};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// Records kept while nobody drains.
const CAPACITY: usize = 10_000;

static QUEUE: Mutex<VecDeque<(u8, String, String)>> = Mutex::new(VecDeque::new());
static READY: Condvar = Condvar::new();

/// Python `logging` levels.
fn level(level: &tracing::Level) -> u8 {
    match *level {
        tracing::Level::ERROR => 40,
        tracing::Level::WARN => 30,
        tracing::Level::INFO => 20,
        _ => 10,
    }
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

struct ToPython;

impl<S: tracing::Subscriber> Layer<S> for ToPython {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        let record = (level(event.metadata().level()), event.metadata().target().to_string(), message.0);
        let mut queue = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
        if queue.len() >= CAPACITY {
            queue.pop_front();
        }
        queue.push_back(record);
        READY.notify_one();
    }
}

/// Installs the layer as the process's tracing subscriber (once; INFO and
/// above from ndsr, WARN and above from the ZooKeeper client).
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::filter::Targets::new()
            .with_target("ndsr", tracing::Level::INFO)
            .with_target("zookeeper_client", tracing::Level::WARN);
        let subscriber = tracing_subscriber::registry().with(ToPython.with_filter(filter));
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

/// Takes every queued record, waiting up to `timeout` for the first.
pub(crate) fn drain(timeout: Duration) -> Vec<(u8, String, String)> {
    let queue = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
    let (mut queue, _) =
        READY.wait_timeout_while(queue, timeout, |q| q.is_empty()).unwrap_or_else(|e| e.into_inner());
    queue.drain(..).collect()
}
