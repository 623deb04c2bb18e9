//! Which service directory a DNS name is, and its instances, kept
//! followed once answered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use ndsr::discovery::{Format, Instances};
use ndsr::Snapshot;

use crate::config::Dns;
use crate::state::{Agent, Held};

/// A feed's latest list.
fn latest(held: &Held<Instances>) -> Option<Instances> {
    held.borrow().as_ref().map(|v| v.value.clone())
}

/// A service directory and its format.
type Service = (String, Option<Format>);

/// The services and roots DNS has read, held: they stay followed however
/// rarely they are asked for (not let go after `[http] path_idle`), so
/// their last list is known through a ZooKeeper outage. A name that no
/// longer is a service is let go when asked for again. At most half of
/// `[http] max_paths` services are kept so.
#[derive(Default)]
pub struct Kept {
    services: Mutex<HashMap<String, (Service, Held<Instances>)>>,
    roots: Mutex<HashMap<String, Held<Arc<Snapshot>>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Kept {
    /// The instances of the service `name` (lower case): an alias of
    /// `[dns.services]`, a `[[service]]`'s name, a root named so, or a child
    /// of a root. `Ok(None)`: no such service; `Err`: it cannot be told now
    /// (never read, and ZooKeeper does not answer; or unreachable for
    /// longer than `max_stale`).
    pub async fn instances(
        &self,
        agent: &Arc<Agent>,
        dns: &Dns,
        name: &str,
    ) -> Result<Option<Instances>, ()> {
        let Some(service) = self.service(agent, dns, name).await? else {
            lock(&self.services).remove(name);
            return Ok(None);
        };
        let kept =
            lock(&self.services).get(name).filter(|(kept, _)| *kept == service).map(|(_, held)| latest(held));
        let list = match kept {
            Some(list) => list,
            None => match agent.service(&service.0, service.1).await {
                Ok(held) => {
                    let list = latest(&held);
                    // Kept followed up to half of `[http] max_paths`, so
                    // that DNS clients asking for every service cannot take
                    // every path the API may follow; beyond, answered and
                    // let go as an API read is.
                    let mut services = lock(&self.services);
                    if services.len() < agent.config().http.max_paths / 2 {
                        services.insert(name.to_string(), (service.clone(), held));
                    }
                    list
                }
                Err(e) => {
                    tracing::warn!(service = %service.0, "DNS: cannot read the service: {}", e.message);
                    return Err(());
                }
            },
        };
        // Older than `max_stale`: not answered.
        let stale_for = || agent.stale_since(&service.0).and_then(|since| since.elapsed().ok());
        match (dns.max_stale, &list) {
            (Some(max), Some(_)) if stale_for().is_some_and(|age| age > max) => Err(()),
            _ => Ok(list),
        }
    }

    /// The directory (and format) `name` names, if any.
    async fn service(&self, agent: &Arc<Agent>, dns: &Dns, name: &str) -> Result<Option<Service>, ()> {
        let config = agent.config();
        if let Some(path) = dns.services.get(name) {
            return Ok(Some((path.clone(), None)));
        }
        if let Some(service) = config.services.iter().find(|s| s.name().eq_ignore_ascii_case(name)) {
            return Ok(Some((service.path.clone(), service.format())));
        }
        if let Some(root) = config.roots.iter().find(|r| ndsr::path::name(r).eq_ignore_ascii_case(name)) {
            return Ok(Some((root.clone(), None)));
        }
        lock(&self.roots).retain(|root, _| config.roots.contains(root));
        for root in &config.roots {
            let listing = self.listing(agent, root).await?;
            let child =
                listing.and_then(|s| s.children.iter().find(|c| c.eq_ignore_ascii_case(name)).cloned());
            if let Some(child) = child {
                return Ok(Some((format!("{root}/{child}"), None)));
            }
        }
        Ok(None)
    }

    /// A root's snapshot (its children's names), the root kept followed.
    async fn listing(&self, agent: &Arc<Agent>, root: &str) -> Result<Option<Arc<Snapshot>>, ()> {
        if let Some(held) = lock(&self.roots).get(root) {
            return Ok(held.borrow().as_ref().map(|v| v.value.clone()));
        }
        let held = agent.node(root).await.map_err(|e| {
            tracing::warn!(root = %root, "DNS: cannot list the root: {}", e.message);
        })?;
        let snapshot = held.borrow().as_ref().map(|v| v.value.clone());
        lock(&self.roots).insert(root.to_string(), held);
        Ok(snapshot)
    }
}
