//! # ndsr: a service registry and dynamic configuration on ZooKeeper
//!
//! A program registers itself as providing a service; other programs list
//! the servers of a service and are called back whenever that list or a
//! piece of configuration changes. The Rust successor of Nextdoor's Python
//! `nd_service_registry`, with the same data format (a Rust and a Python
//! fleet can share one ZooKeeper).
//!
//! ```no_run
//! # async fn demo() -> ndsr::Result<()> {
//! use serde_json::json;
//!
//! let registry = ndsr::Registry::builder("127.0.0.1:2181").build().await?;
//!
//! // Register: an ephemeral node named host:port, kept while we live.
//! registry.set_node("/services/web/10.0.0.1:80", json!({"zone": "a"})).await?;
//!
//! // Discover: served from memory after the first call.
//! let web = registry.get("/services/web").await?;
//! println!("web servers: {:?}", web.children);
//!
//! // Subscribe: the current list now, then every change.
//! registry.add_callback("/services/web", |s: &ndsr::Snapshot| println!("now {:?}", s.children))?;
//! # Ok(()) }
//! ```
//!
//! # Guarantees
//!
//! - **Disconnected** (the session still alive): reads return the cached
//!   snapshot marked [`Freshness::Stale`]; writes wait up to the connect
//!   timeout, then fail with [`Error::NoConnection`]; the registry keeps
//!   reconnecting. On reconnect every watched path is re-read (events are
//!   lost while disconnected) and what changed is delivered.
//! - **Session expired**: a new session is built with jittered back-off,
//!   every registration is made again (a node left by our own old session
//!   is replaced atomically; a node our new session owns is never deleted
//!   and re-created), then every watch is re-armed and re-read. Meanwhile
//!   subscribers keep the last known snapshot: they are never told a service
//!   is empty because of our own expiry.
//! - **Server down**: as disconnected; once any server is back, everything
//!   converges to the desired state.
//! - Every ZooKeeper call is bounded by a timeout; bad input is a typed
//!   error before any network call; decoding never fails.
//!
//! # Layout
//! - [`registry`][]: [`Registry`], the handle.
//! - [`config`][]: [`RegistryBuilder`].
//! - [`codec`][]: the original's data format ([`Data`]).
//! - [`snapshot`][]: [`Snapshot`], [`Stat`], [`Freshness`].
//! - [`subscription`][]: [`Subscription`] and callbacks.
//! - [`acl`][]: digest credentials and ACLs.
//! - [`cachefile`][]: the on-disk cache for cold starts.
//! - [`lock`][]: N-holder locks compatible with kazoo's `Semaphore`.
//! - [`blocking`][]: the same registry for programs without an async runtime.
//! - `session`: the supervisor and the hub of path records (private; see its docs).

pub mod acl;
mod backoff;
pub mod blocking;
mod cache;
pub mod cachefile;
pub mod codec;
pub mod config;
pub mod discovery;
pub mod election;
mod error;
#[cfg(test)]
mod hostile_tests;
pub mod lock;
pub mod path;
pub mod registry;
pub mod release;
mod session;
pub mod snapshot;
mod stats;
pub mod subscription;
mod tls;

pub use acl::{Acl, AuthId, Credentials, Permission};
pub use codec::{Data, Object};
pub use config::RegistryBuilder;
pub use error::{Error, Result};
pub use lock::{LockBuilder, LockGuard, LockLost};
pub use path::{validate_path, MAX_PATH_BYTES};
pub use registry::Registry;
pub use release::{PublishOptions, Release};
pub use session::State;
pub use snapshot::{Freshness, Snapshot, Stat};
pub use stats::Stats;
pub use subscription::{CallbackId, Subscription};
pub use tls::Tls;

/// The README's example, compiled as a doctest so that it cannot drift.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeExample;
