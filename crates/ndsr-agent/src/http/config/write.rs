//! `POST /v1/config/<path>`: publishes and rollbacks (the read side is
//! the parent module).

use super::*;

/// `POST /v1/config/<path>`: publish the body (JSON), or `?rollback=N`
/// publish release N's value again. `If-Match: N` makes it conditional on
/// the live version (`-1`: only if the node does not exist); the message
/// is `X-Ndsr-Message` or `?message=`. `POST <path>/rollback` with
/// `{"to": N, "message": "..."}` (or `?to=N`) is `<path>?rollback=N` when
/// `<path>` is a configuration path with releases.
pub async fn post(
    State(agent): State<Arc<Agent>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<PostQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ConfigResult<Response> {
    let path = zk_path(&agent, path)?;
    let (path, result) = Box::pin(write(&agent, path, &headers, query, body)).await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.code,
    };
    ::metrics::counter!("ndsr_config_publishes_total", "path" => path, "result" => outcome).increment(1);
    let release = result?;
    Ok(Json(release).into_response())
}

/// What a `POST` to `path` writes: the path written (the parent for
/// `<config path>/rollback`) and the release, or why not.
async fn write(
    agent: &Agent,
    path: String,
    headers: &HeaderMap,
    query: Result<Query<PostQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> (String, ConfigResult<Value>) {
    for name in ["rollback", "history", "canary"] {
        let Some(parent) = sub_route(&path, name) else {
            continue;
        };
        match with_releases(agent, parent).await {
            Ok(None) => {}
            Ok(Some(_)) if name == "history" => {
                let message = format!(
                    "{path} is the history route of the configuration path {parent}; \
                     a node named history cannot be written under it through the agent: rename it"
                );
                return (path, Err(bad(message)));
            }
            Ok(Some(_)) if name == "canary" => {
                let parent = parent.to_string();
                let result = super::canary::post(agent, &parent, headers, query, body).await;
                return (parent, result);
            }
            Ok(Some(_)) => {
                let parent = parent.to_string();
                let result = rollback_route(agent, &parent, headers, query, body).await;
                return (parent, result);
            }
            Err(e) => return (path, Err(e)),
        }
    }
    let result = publish(agent, &path, headers, query, body).await;
    (path, result)
}

/// The message of a write: `X-Ndsr-Message`, or `given` (the query's or
/// the body's), not both.
pub(super) fn message_of(headers: &HeaderMap, given: Option<String>) -> ConfigResult<String> {
    match (headers.get("x-ndsr-message"), given) {
        (Some(_), Some(_)) => {
            Err(bad("give the message once: X-Ndsr-Message, or ?message= (or the body's)".into()))
        }
        (Some(header), None) => Ok(header
            .to_str()
            .map_err(|_| bad("X-Ndsr-Message is not plain ASCII text; send the message as ?message=".into()))?
            .to_string()),
        (None, message) => Ok(message.unwrap_or_default()),
    }
}

/// `If-Match` of a write, when given.
pub(super) fn if_version(headers: &HeaderMap) -> ConfigResult<Option<i32>> {
    headers.get(header::IF_MATCH).map(if_match).transpose()
}

/// `POST <path>/rollback` on a configuration path with releases: the
/// version from the body (`{"to": N, "message": "..."}`) or `?to=N`.
async fn rollback_route(
    agent: &Agent,
    path: &str,
    headers: &HeaderMap,
    query: Result<Query<PostQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ConfigResult<Value> {
    let Query(query) = query.map_err(ApiError::from)?;
    let body = body.map_err(ApiError::from)?;
    if query.rollback.is_some() {
        return Err(bad(format!(
            "POST {path}/rollback takes the version as {{\"to\": N}} or ?to=N, not ?rollback="
        )));
    }
    let given: RollbackBody = if body.iter().all(u8::is_ascii_whitespace) {
        RollbackBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| bad(format!("the body is not {{\"to\": N, \"message\": \"...\"}} ({e})")))?
    };
    let to = match (given.to, query.to) {
        (Some(_), Some(_)) => return Err(bad("give the version once: {\"to\": N} or ?to=N".into())),
        (Some(to), None) | (None, Some(to)) => to,
        (None, None) => {
            return Err(bad("a rollback needs the version to roll back to: {\"to\": N} or ?to=N".into()))
        }
    };
    let message = match (given.message, query.message) {
        (Some(_), Some(_)) => return Err(bad("give the message once: in the body or as ?message=".into())),
        (body, query) => message_of(headers, body.or(query))?,
    };
    let options = PublishOptions { message, if_version: if_version(headers)? };
    let release = agent.registry.rollback(path, to, options).await?;
    Ok(release_json(&release, Some(to)))
}

/// The publish or rollback of a `POST`, and the release it wrote.
async fn publish(
    agent: &Agent,
    path: &str,
    headers: &HeaderMap,
    query: Result<Query<PostQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ConfigResult<Value> {
    let Query(query) = query.map_err(ApiError::from)?;
    let body = body.map_err(ApiError::from)?;
    if query.to.is_some() {
        return Err(bad(format!(
            "?to= is for POST <configuration path>/rollback, and {path} is not one (no releases); \
             roll back with ?rollback=N"
        )));
    }
    let message = message_of(headers, query.message)?;
    let options = PublishOptions { message, if_version: if_version(headers)? };
    let release = match query.rollback {
        Some(to) => {
            if !body.is_empty() {
                return Err(bad("a rollback takes no body: the value is the release's".into()));
            }
            agent.registry.rollback(path, to, options).await?
        }
        None => {
            if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&body) {
                return Err(bad(format!("the body is not JSON ({e}); a configuration value is JSON")));
            }
            agent.registry.publish(path, &body, options).await?
        }
    };
    Ok(release_json(&release, query.rollback))
}

/// `If-Match: N` (quoted or not): the version expected, `-1` for none.
pub(super) fn if_match(value: &HeaderValue) -> ConfigResult<i32> {
    let text = value.to_str().unwrap_or_default().trim();
    let text = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text);
    match text.parse::<i32>() {
        Ok(version) if version >= -1 => Ok(version),
        _ => Err(bad(format!(
            "If-Match: {:?} is not a version (the live version expected, or -1: must not exist)",
            String::from_utf8_lossy(value.as_bytes())
        ))),
    }
}

/// A release written, as the API answers it.
pub(super) fn release_json(release: &Release, rollback_of: Option<i32>) -> Value {
    json!({
        "path": release.path,
        "version": release.version,
        "previous_version": release.previous_version,
        "entry": release.entry,
        "sha256": release.sha256,
        "op": if rollback_of.is_some() { "rollback" } else { "publish" },
        "rollback_of": rollback_of,
    })
}
