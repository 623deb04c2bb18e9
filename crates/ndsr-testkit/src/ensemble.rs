//! [`ZkEnsemble`]: three ZooKeeper servers in one quorum on loopback.

use std::net::TcpListener;

use crate::error::io;
use crate::server::{Quorum, ZkServerBuilder};
use crate::{four_letter_word, Error, Result, ZkServer};

/// Role of an ensemble member, from the `Mode:` line of `srvr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The quorum's leader.
    Leader,
    /// A follower.
    Follower,
    /// Running but not serving (no quorum, or electing).
    NotServing,
    /// Not running, frozen or unreachable.
    Down,
}

/// Three ZooKeeper servers forming a quorum, each on its own loopback
/// client, quorum and election ports, with its own data directory.
///
/// Each member is a [`ZkServer`], so every fault control works on one
/// member: [`member`](Self::member)`(i).stop()`, `.start()`, `.freeze()`,
/// `.thaw()`. A member started again waits until it serves, which needs a
/// quorum (two of three) to be up. All members are killed on drop.
///
/// # Example
///
/// ```no_run
/// use ndsr_testkit::ZkEnsemble;
///
/// let ensemble = ZkEnsemble::new()?;
/// let leader = ensemble.leader().expect("a quorum elects a leader");
/// ensemble.member(leader).stop()?; // the others elect a new leader
/// println!("clients connect to {}", ensemble.connect_string());
/// ensemble.member(leader).start()?;
/// # Ok::<(), ndsr_testkit::Error>(())
/// ```
#[derive(Debug)]
pub struct ZkEnsemble {
    members: Vec<ZkServer>,
    /// With [`ZkEnsemble::partitionable`]: the proxies of each member's
    /// quorum links, `links[i]` those that member `i` talks through and
    /// those the others talk to `i` through.
    links: Vec<Vec<std::sync::Arc<crate::FaultProxy>>>,
}

fn port_of(proxy: &crate::FaultProxy) -> u16 {
    proxy.connect_string().rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(0)
}

impl ZkEnsemble {
    /// Number of members.
    pub const SIZE: usize = 3;

    /// Starts three members and waits until all of them serve.
    ///
    /// # Errors
    /// As [`ZkServerBuilder::start`] for any member.
    pub fn new() -> Result<ZkEnsemble> {
        ZkEnsemble::start(false)
    }

    /// Starts three members whose quorum and election links each go
    /// through a [`FaultProxy`](crate::FaultProxy) of their own, so that
    /// [`isolate`](Self::isolate) can cut one member from the other two
    /// while every server stays up and keeps its client port.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn partitionable() -> Result<ZkEnsemble> {
        ZkEnsemble::start(true)
    }

    /// Cuts member `i` from the other two on the quorum and election
    /// ports (both ways); its clients stay connected to it, until it drops
    /// them for lack of a quorum.
    ///
    /// # Panics
    /// If the ensemble was not made [`partitionable`](Self::partitionable).
    pub fn isolate(&self, i: usize) {
        assert!(!self.links.is_empty(), "isolate needs ZkEnsemble::partitionable()");
        self.links[i].iter().for_each(|p| p.cut());
    }

    /// Lets member `i` talk to the others again.
    pub fn rejoin(&self, i: usize) {
        self.links.get(i).into_iter().flatten().for_each(|p| p.heal());
    }

    fn start(partitionable: bool) -> Result<ZkEnsemble> {
        // Hold all nine listeners at once so the OS hands out distinct ports.
        let listeners = (0..3 * Self::SIZE)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(io("finding free loopback ports"))?;
        let ports = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(io("reading bound ports"))?;
        drop(listeners);
        let real = |j: usize| (ports[Self::SIZE + 2 * j], ports[Self::SIZE + 2 * j + 1]);
        // Member i reaches member j at j's real ports, or through proxies
        // of its own (one for the quorum port, one for the election port).
        let mut links: Vec<Vec<std::sync::Arc<crate::FaultProxy>>> = vec![Vec::new(); Self::SIZE];
        let mut configs = Vec::new();
        for i in 0..Self::SIZE {
            let mut servers = String::new();
            for j in 0..Self::SIZE {
                let (quorum, election) = if partitionable && i != j {
                    let (q, e) = real(j);
                    let q = std::sync::Arc::new(crate::FaultProxy::start(&format!("127.0.0.1:{q}"))?);
                    let e = std::sync::Arc::new(crate::FaultProxy::start(&format!("127.0.0.1:{e}"))?);
                    let ports = (port_of(&q), port_of(&e));
                    // The link i -> j is cut when either end is isolated.
                    for p in [&q, &e] {
                        links[i].push(p.clone());
                        links[j].push(p.clone());
                    }
                    ports
                } else {
                    real(j)
                };
                servers.push_str(&format!("server.{}=127.0.0.1:{quorum}:{election}\n", j + 1));
            }
            configs.push(servers);
        }
        let members = (0..Self::SIZE)
            .map(|i| {
                let mut builder = ZkServerBuilder::default().port(ports[i]);
                builder.quorum = Some(Quorum { id: i as u32 + 1, servers: configs[i].clone() });
                builder.prepare()
            })
            .collect::<Result<Vec<_>>>()?;
        let ensemble = ZkEnsemble { members, links };
        for member in &ensemble.members {
            member.spawn()?;
        }
        for member in &ensemble.members {
            member.wait_serving()?;
        }
        Ok(ensemble)
    }

    /// The `i`th member (0, 1 or 2).
    ///
    /// # Panics
    /// If `i` is not below [`SIZE`](Self::SIZE).
    pub fn member(&self, i: usize) -> &ZkServer {
        &self.members[i]
    }

    /// All members.
    pub fn members(&self) -> &[ZkServer] {
        &self.members
    }

    /// `127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`.
    pub fn connect_string(&self) -> String {
        self.members.iter().map(ZkServer::connect_string).collect::<Vec<_>>().join(",")
    }

    /// The role of member `i`, from its `srvr` answer.
    pub fn mode(&self, i: usize) -> Mode {
        match four_letter_word(&self.members[i].connect_string(), "srvr") {
            Ok(answer) if answer.contains("Mode: leader") => Mode::Leader,
            Ok(answer) if answer.contains("Mode: follower") => Mode::Follower,
            Ok(_) => Mode::NotServing,
            Err(_) => Mode::Down,
        }
    }

    /// The index of the current leader, if one is elected and reachable.
    pub fn leader(&self) -> Option<usize> {
        (0..Self::SIZE).find(|&i| self.mode(i) == Mode::Leader)
    }

    /// The index of the member whose client port is `port`.
    ///
    /// # Errors
    /// [`Error::InvalidState`] if no member has that port.
    pub fn member_with_port(&self, port: u16) -> Result<usize> {
        self.members
            .iter()
            .position(|m| m.port() == port)
            .ok_or_else(|| Error::InvalidState(format!("no ensemble member listens on {port}")))
    }
}
