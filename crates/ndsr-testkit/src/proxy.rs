//! [`FaultProxy`]: a loopback TCP proxy that can cut, delay and count.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::io;
use crate::{Error, Result};

/// A TCP proxy on a loopback port in front of one server.
///
/// Clients connect to [`connect_string`](Self::connect_string) instead of the
/// server. The proxy can [`cut`](Self::cut) every connection (and close new
/// ones at once) until [`heal`](Self::heal)ed, [`blackhole`](Self::blackhole)
/// them (drop every byte, close nothing: a dead link, not a refused one),
/// [`delay`](Self::delay) every
/// chunk it forwards, and counts the bytes each way, which is how the
/// benchmarks measure what a client reads per change. It runs on its own
/// threads, so it works under any (or no) async runtime.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use ndsr_testkit::{FaultProxy, ZkServer};
///
/// let server = ZkServer::new()?;
/// let proxy = FaultProxy::start(&server.connect_string())?;
/// // connect a client to proxy.connect_string() ...
/// proxy.cut(); // the client sees its connection drop
/// proxy.heal();
/// proxy.delay(Duration::from_millis(50));
/// println!("server sent {} bytes", proxy.bytes_to_client());
/// # Ok::<(), ndsr_testkit::Error>(())
/// ```
pub struct FaultProxy {
    address: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Shared {
    cut: AtomicBool,
    blackholed: AtomicBool,
    /// Connections that lost bytes to the blackhole: closed by `heal`, as
    /// their streams are no longer whole.
    tainted: Mutex<std::collections::HashSet<u64>>,
    closing: AtomicBool,
    delay_micros: AtomicU64,
    /// Chunks forwarded from clients to the server so far.
    chunks_to_server: AtomicU64,
    /// Chunks to the server after this many are held `late_micros`.
    late_after: AtomicU64,
    late_micros: AtomicU64,
    to_server: AtomicU64,
    to_client: AtomicU64,
    accepted: AtomicU64,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, (TcpStream, TcpStream)>>,
}

impl Shared {
    fn open(&self) -> MutexGuard<'_, HashMap<u64, (TcpStream, TcpStream)>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn tainted(&self) -> MutexGuard<'_, std::collections::HashSet<u64>> {
        self.tainted.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn close(&self, id: u64) {
        if let Some((client, server)) = self.open().remove(&id) {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        }
    }
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy").field("address", &self.address).field("cut", &self.is_cut()).finish()
    }
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`host:port`) on a free loopback port.
    ///
    /// # Errors
    /// [`Error::Io`] if the upstream address does not resolve or no port
    /// can be bound.
    pub fn start(upstream: &str) -> Result<FaultProxy> {
        let upstream: SocketAddr = upstream
            .to_socket_addrs()
            .map_err(io(format!("resolving {upstream}")))?
            .next()
            .ok_or_else(|| Error::InvalidState(format!("{upstream} resolves to no address")))?;
        let listener = TcpListener::bind("127.0.0.1:0").map_err(io("binding the proxy"))?;
        let address = listener.local_addr().map_err(io("reading the proxy's port"))?;
        let shared = Arc::new(Shared::default());
        let acceptor = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("fault-proxy".into())
                .spawn(move || accept_loop(listener, upstream, shared))
                .map_err(io("starting the proxy thread"))?
        };
        Ok(FaultProxy { address, shared, acceptor: Some(acceptor) })
    }

    /// `127.0.0.1:PORT` of the proxy, for a client's connection string.
    pub fn connect_string(&self) -> String {
        self.address.to_string()
    }

    /// Closes every open connection, and closes new ones as soon as they
    /// are accepted, until [`heal`](Self::heal).
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        let ids: Vec<u64> = self.shared.open().keys().copied().collect();
        for id in ids {
            self.shared.close(id);
        }
    }

    /// Drops every byte each way from now on, without closing anything:
    /// peers see silence, as behind a firewall that drops packets, and
    /// notice only by their own timeouts. New connections are accepted and
    /// get silence too. [`heal`](Self::heal) ends it.
    pub fn blackhole(&self) {
        self.shared.blackholed.store(true, Ordering::SeqCst);
    }

    /// Is the proxy blackholing?
    pub fn is_blackholed(&self) -> bool {
        self.shared.blackholed.load(Ordering::SeqCst)
    }

    /// Lets connections through again, after a [`cut`](Self::cut) or a
    /// [`blackhole`](Self::blackhole). Connections that lost bytes to the
    /// blackhole are closed (their streams are no longer whole); clients
    /// reconnect.
    pub fn heal(&self) {
        self.shared.blackholed.store(false, Ordering::SeqCst);
        let tainted: Vec<u64> = self.shared.tainted().drain().collect();
        for id in tainted {
            self.shared.close(id);
        }
        self.shared.cut.store(false, Ordering::SeqCst);
    }

    /// Is the proxy cut?
    pub fn is_cut(&self) -> bool {
        self.shared.cut.load(Ordering::SeqCst)
    }

    /// Holds every chunk this long before forwarding it (zero: no delay).
    pub fn delay(&self, delay: Duration) {
        let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.shared.delay_micros.store(micros, Ordering::SeqCst);
    }

    /// Holds every chunk a client sends to the server after the first
    /// `after` chunks (counting from the proxy's start, see
    /// [`chunks_to_server`](Self::chunks_to_server)) this long before
    /// forwarding it; answers are not delayed. A test can so let a client's
    /// next request reach the server only after the client gave up on it,
    /// while earlier ones are answered at once.
    pub fn delay_to_server_after(&self, after: u64, delay: Duration) {
        let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.shared.late_micros.store(micros, Ordering::SeqCst);
        self.shared.late_after.store(after, Ordering::SeqCst);
    }

    /// Chunks (reads, usually one request each) forwarded or held from
    /// clients to the server so far.
    pub fn chunks_to_server(&self) -> u64 {
        self.shared.chunks_to_server.load(Ordering::SeqCst)
    }

    /// Bytes forwarded from clients to the server so far.
    pub fn bytes_to_server(&self) -> u64 {
        self.shared.to_server.load(Ordering::SeqCst)
    }

    /// Bytes forwarded from the server to clients so far.
    pub fn bytes_to_client(&self) -> u64 {
        self.shared.to_client.load(Ordering::SeqCst)
    }

    /// Connections accepted so far (including ones closed by a cut).
    pub fn connections_accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.shared.open().len()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        self.cut();
        // Wake the blocking accept() so its thread sees `closing`.
        let _ = TcpStream::connect_timeout(&self.address, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.closing.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        if shared.cut.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        if shared.blackholed.load(Ordering::SeqCst) {
            // Accepted, never answered: read and drop until healed or closed.
            let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
            let (Ok(keep), Ok(reader)) = (client.try_clone(), client.try_clone()) else { continue };
            shared.open().insert(id, (client, keep));
            shared.tainted().insert(id);
            let shared = shared.clone();
            let _ = std::thread::Builder::new().name("fault-proxy-sink".into()).spawn(move || {
                let mut reader = reader;
                let mut buf = [0u8; 4096];
                while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
                shared.close(id);
            });
            continue;
        }
        let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(2)) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
        let (Ok(c1), Ok(c2), Ok(s1), Ok(s2)) =
            (client.try_clone(), client.try_clone(), server.try_clone(), server.try_clone())
        else {
            continue;
        };
        shared.open().insert(id, (client, server));
        for (from, to, to_client) in [(c1, s1, false), (s2, c2, true)] {
            let shared = shared.clone();
            let closer = shared.clone();
            let spawned = std::thread::Builder::new()
                .name("fault-proxy-pump".into())
                .spawn(move || pump(id, from, to, to_client, &shared));
            if spawned.is_err() {
                // A connection with a missing pump would hang: close it.
                closer.close(id);
            }
        }
    }
}

fn pump(id: u64, mut from: TcpStream, mut to: TcpStream, to_client: bool, shared: &Shared) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let delay = shared.delay_micros.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(Duration::from_micros(delay));
        }
        if !to_client {
            let chunk = shared.chunks_to_server.fetch_add(1, Ordering::SeqCst) + 1;
            let late = shared.late_micros.load(Ordering::SeqCst);
            if late > 0 && chunk > shared.late_after.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_micros(late));
            }
        }
        if shared.cut.load(Ordering::SeqCst) {
            break;
        }
        if shared.blackholed.load(Ordering::SeqCst) {
            shared.tainted().insert(id);
            continue;
        }
        // Count before writing, so that a peer that has read the bytes
        // always finds them counted.
        let counter = if to_client { &shared.to_client } else { &shared.to_server };
        counter.fetch_add(n as u64, Ordering::SeqCst);
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    shared.close(id);
}
