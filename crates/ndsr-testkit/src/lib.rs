//! Real ZooKeeper servers for tests: standalone servers, three-node
//! ensembles, a fault-injecting TCP proxy and polling helpers.
//!
//! Every server is a real ZooKeeper JVM started from the local installation
//! (see [`ZkInstall`]), listening on a free loopback port, with its own
//! temporary data directory. Servers are killed and reaped when their handle
//! drops, even when the test panics; a watchdog process kills them too if the
//! test process itself dies.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use ndsr_testkit::{eventually, ZkServer};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let server = ZkServer::new()?;
//! let client = zookeeper_client::Client::connect(&server.connect_string()).await?;
//! server.stop()?; // connections are refused now
//! server.start()?; // same port, same data, same sessions
//! eventually(Duration::from_secs(10), "client reconnects", || async {
//!     client.check_stat("/").await.is_ok()
//! })
//! .await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`install`]: finding the ZooKeeper installation and Java.
//! - [`server`]: [`ZkServer`], one standalone server with fault controls.
//! - [`ensemble`]: [`ZkEnsemble`], three servers in a quorum.
//! - [`proxy`]: [`FaultProxy`], a TCP proxy that can cut, delay and count.
//! - [`wait`]: [`eventually`], [`unique_path`] and timing helpers.
//! - [`curator`]: the real Apache Curator 5 as a test oracle.
//! - [`heap`]: [`LiveHeap`], a global allocator counting the live bytes.

pub mod curator;
pub mod ensemble;
mod error;
pub mod heap;
pub mod install;
mod process;
pub mod proxy;
pub mod server;
pub mod tls;
pub mod wait;

pub use ensemble::{Mode, ZkEnsemble};
pub use error::{Error, Result};
pub use heap::LiveHeap;
pub use install::ZkInstall;
pub use process::four_letter_word;
pub use proxy::FaultProxy;
pub use server::{expire_session, ZkServer, ZkServerBuilder};
pub use tls::TlsMaterial;
pub use wait::{eventually, scaled, unique_path, TimedOut};
