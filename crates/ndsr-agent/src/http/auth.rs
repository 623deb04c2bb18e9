//! Who may do what: the token and read-only checks before any handler,
//! and the DNS-rebinding guard of a loopback agent.

use axum::http::Request;
use axum::http::{header, HeaderMap, Method};
use axum::response::{IntoResponse, Response};

use super::common::ApiError;
use crate::error::ErrorKind;
use crate::state::Agent;

/// The token and read-only checks, before any handler: the answer that
/// refuses `request`, or `None` to let it through. Synchronous, so the
/// front layer ([`super::front`]) needs no future of its own for it.
pub fn refusal<B>(agent: &Agent, request: &Request<B>) -> Option<Response> {
    let config = agent.config();
    let write = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    // The health probe and the dashboard's static files never need the
    // token (the dashboard's data does).
    let path = request.uri().path();
    let public = path == "/v1/health" || path == "/" || path.starts_with("/assets/");
    // On loopback, only local names: a web page whose name an attacker
    // points at 127.0.0.1 (DNS rebinding) gets nothing.
    if config.http.listen.ip().is_loopback() {
        let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok());
        if host.is_some_and(|host| !is_loopback_host(host)) {
            return Some(ApiError::new(
                ErrorKind::Forbidden,
                "bad_host",
                "this agent listens on loopback and answers only to a loopback Host (localhost, 127.0.0.1, [::1])"
                    .into(),
            )
            .into_response());
        }
    }
    if write && config.http.readonly {
        return Some(
            ApiError::new(
                ErrorKind::Forbidden,
                "readonly",
                "the agent is read-only (--readonly or [http] readonly)".into(),
            )
            .into_response(),
        );
    }
    if write || (config.http.read_token && !public) {
        let Some(token) = &config.token else {
            return Some(
                ApiError::new(
                    ErrorKind::Forbidden,
                    "no_token",
                    "writes are off: no token is configured ([http] token or token_file)".into(),
                )
                .into_response(),
            );
        };
        if !bearer_matches(request.headers(), &token.0) {
            return Some(
                ApiError::new(
                    ErrorKind::Unauthenticated,
                    "unauthorized",
                    "a valid `Authorization: Bearer <token>` header is needed".into(),
                )
                .into_response(),
            );
        }
    }
    None
}

/// Is a Host header (with or without a port) a loopback name?
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => match host.rsplit_once(':') {
            Some((name, port)) if !name.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => name,
            _ => host,
        },
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether the request carries `Bearer <token>`, compared in constant time.
fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .as_bytes();
    let token = token.as_bytes();
    let differs = given.len() != token.len();
    let mut diff = 0u8;
    for (i, t) in token.iter().enumerate() {
        diff |= t ^ given.get(i).copied().unwrap_or(!t);
    }
    !differs && diff == 0
}

/// Whether the request carries the write token: its reader may see whole
/// checks (command lines, URLs with their secrets).
pub fn is_owner(agent: &Agent, headers: &HeaderMap) -> bool {
    agent.config().token.as_ref().is_some_and(|token| bearer_matches(headers, &token.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn only_loopback_hosts_are_loopback() {
        for host in [
            "localhost",
            "localhost:8500",
            "127.0.0.1:8500",
            "127.0.0.2",
            "[::1]:8500",
            "[::1]",
            "LOCALHOST.",
            "a.localhost:1",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8500",
            "10.0.0.1:8500",
            "localhost.evil.example",
            "[::2]:80",
            "127.0.0.1.evil.example",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn the_token_must_match_exactly() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            headers
        };
        let token = "0123456789abcdef";
        assert!(bearer_matches(&with("Bearer 0123456789abcdef"), token));
        for wrong in [
            "Bearer 0123456789abcdeF",
            "Bearer 0123456789abcde",
            "Bearer 0123456789abcdef0",
            "0123456789abcdef",
            "Bearer ",
        ] {
            assert!(!bearer_matches(&with(wrong), token), "{wrong}");
        }
        assert!(!bearer_matches(&HeaderMap::new(), token));
    }
}
