//! What the agent and `ndsr get --instances` show of services and
//! instances (JSON and YAML), and times as the API gives them.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use ndsr::discovery::{Instance, Instances};
use serde::Serialize;

/// A service listing, for JSON and YAML.
#[derive(Serialize)]
pub struct ListingView {
    path: String,
    format: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stale: bool,
    instances: Vec<InstanceView>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    bad: Vec<BadView>,
}

/// One instance, for JSON and YAML.
#[derive(Serialize)]
pub struct InstanceView {
    key: String,
    id: String,
    address: String,
    serving: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    ssl_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    weight: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shard: Option<i64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    endpoints: BTreeMap<String, String>,
}

/// A child that is not an instance.
#[derive(Serialize)]
pub struct BadView {
    key: String,
    reason: String,
}

/// A listing as `get --instances` and the agent show it.
pub fn listing_view(listing: &Instances) -> ListingView {
    ListingView {
        path: listing.path.clone(),
        format: listing.format.map(|f| f.to_string()),
        stale: listing.stale,
        instances: listing.instances.iter().map(|i| instance_view(i)).collect(),
        bad: listing.bad.iter().map(|b| BadView { key: b.key.clone(), reason: b.reason.clone() }).collect(),
    }
}

/// An instance as `get --instances` and the agent show it.
pub fn instance_view(i: &Instance) -> InstanceView {
    InstanceView {
        key: i.key.clone(),
        id: i.id.clone(),
        address: i.address(),
        serving: i.serving,
        ssl_port: i.ssl_port,
        weight: i.weight,
        shard: i.shard,
        labels: i.labels.clone(),
        endpoints: i.endpoints.iter().map(|(k, e)| (k.clone(), format!("{}:{}", e.host, e.port))).collect(),
    }
}

/// `t` in milliseconds since the Unix epoch (0 before it).
pub fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
