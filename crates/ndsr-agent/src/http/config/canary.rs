//! Canaries over HTTP (issue 25): `GET <path>/canary` (the canary and
//! what the clients run), `POST <path>/canary?hosts=|labels=|percent=`
//! (start one; the body is the value), `POST <path>/canary?promote` and
//! `?abort`, on a configuration path with releases; and the canary this
//! agent applies on a plain `GET` of the path.

use std::collections::BTreeMap;

use ndsr::release::{Canary, CanaryRule};

use super::write::{if_version, message_of, release_json};
use super::*;

/// The rule of a `POST <path>/canary`: exactly one of `hosts=a,b`,
/// `labels=k=v,k2=v2` and `percent=P`.
fn rule(query: &PostQuery) -> ConfigResult<CanaryRule> {
    let list =
        |text: &str| text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
    match (&query.hosts, &query.labels, query.percent) {
        (Some(hosts), None, None) => Ok(CanaryRule::Hosts(list(hosts))),
        (None, Some(labels), None) => {
            let mut pairs = BTreeMap::new();
            for pair in list(labels) {
                let (k, v) = pair.split_once('=').ok_or_else(|| {
                    bad(format!("labels={labels:?}: give NAME=VALUE pairs, separated by commas"))
                })?;
                pairs.insert(k.to_string(), v.to_string());
            }
            Ok(CanaryRule::Labels(pairs))
        }
        (None, None, Some(share)) => Ok(CanaryRule::Percent(share)),
        _ => Err(bad("a canary takes exactly one of ?hosts=, ?labels= and ?percent=".into())),
    }
}

/// `POST <path>/canary` on a configuration path with releases.
pub(super) async fn post(
    agent: &Agent,
    path: &str,
    headers: &HeaderMap,
    query: Result<Query<PostQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ConfigResult<Value> {
    let Query(query) = query.map_err(ApiError::from)?;
    let body = body.map_err(ApiError::from)?;
    if query.rollback.is_some() || query.to.is_some() {
        return Err(bad(format!("POST {path}/canary takes no rollback: roll back on {path}")));
    }
    let (promote, abort) = (flag("promote", &query.promote)?, flag("abort", &query.abort)?);
    let ruled = query.hosts.is_some() || query.labels.is_some() || query.percent.is_some();
    let message = message_of(headers, query.message.clone())?;
    match (promote, abort) {
        (true, true) => Err(bad("promote or abort, not both".into())),
        (true, false) | (false, true) if ruled || !body.is_empty() => {
            Err(bad("promote and abort take no rule and no body".into()))
        }
        (true, false) => {
            let release = agent.registry.promote_canary(path, PublishOptions::message(message)).await?;
            let mut view = release_json(&release, None);
            view["op"] = json!("promote");
            Ok(view)
        }
        (false, true) => {
            let aborted = agent.registry.abort_canary(path).await?;
            Ok(json!({"path": path, "aborted": aborted}))
        }
        (false, false) => {
            let rule = rule(&query)?;
            if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&body) {
                return Err(bad(format!("the body is not JSON ({e}); a configuration value is JSON")));
            }
            let options = PublishOptions { message, if_version: if_version(headers)? };
            let canary = agent.registry.start_canary(path, &body, rule, options).await?;
            Ok(canary.view())
        }
    }
}

/// Canaries remembered at most (then forgotten all at once).
const REMEMBERED: usize = 1024;

/// The canary of `path` that this agent applies, if any, for a live value
/// at `version`: its node is followed (from the cache, as the value is:
/// not waited for, so an outage costs nothing here), and read again only
/// when it changes. A canary over another live version applies to no one.
pub(super) async fn applied(agent: &Arc<Agent>, path: &str, version: i32) -> Option<Arc<Canary>> {
    let node = agent.registry.canary_node(path);
    let snapshot = agent.node_now(&node).ok()??;
    let mzxid = snapshot.stat.as_ref()?.mzxid;
    let known = agent.canaries.lock().unwrap_or_else(|e| e.into_inner()).get(&node).cloned();
    let canary = match known {
        Some((at, canary)) if at == mzxid => canary,
        _ => {
            let canary = match agent.registry.canary(path).await {
                Ok(canary) => canary.map(Arc::new),
                Err(e @ ndsr::Error::Data { .. }) => {
                    tracing::warn!(path, "ignoring the canary, which cannot be read: {e}");
                    None
                }
                // Not remembered: read again on the next request.
                Err(e) => {
                    tracing::debug!(path, "the canary could not be read now: {e}");
                    return None;
                }
            };
            let mut memo = agent.canaries.lock().unwrap_or_else(|e| e.into_inner());
            if memo.len() >= REMEMBERED {
                memo.clear();
            }
            memo.insert(node, (mzxid, canary.clone()));
            canary
        }
    };
    canary.filter(|c| c.base_version == version && agent.registry.picked_by(c))
}
