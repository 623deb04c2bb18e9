//! The task behind a [`Config`](super::Config): follows the live node and
//! its canary, judges each value, and reports what it applied.

use super::*;
use crate::release::{Applied, Canary, ClientReport, Refusal};

/// What one read of the node came to.
pub(super) enum Outcome<T> {
    Good(T, i32, i64, Applied),
    Refused(i32, Vec<String>),
    Missing,
    Unreachable,
}

/// The task that follows the node for the handles.
pub(super) struct Follower<T> {
    registry: Registry,
    path: String,
    checks: Vec<Check<T>>,
    /// The zxids of the live node's and the canary's last writes read
    /// (`None`: missing).
    last_read: (Option<i64>, Option<i64>),
    last_refused: Option<i32>,
    /// The last canary refused, by its SHA-256.
    last_refused_canary: Option<String>,
    /// The last canary node that could not be read, by its zxid.
    last_bad_canary: Option<i64>,
    pub(super) rejected: Arc<AtomicU64>,
    /// Save each good value to the cache file.
    saves: bool,
    /// What the handles hold now.
    applied: Applied,
    /// What this client reports, once it has seen a canary (read-only
    /// registries report nothing).
    report: Option<watch::Sender<Vec<u8>>>,
    /// Values a caller refused after this handle judged them (see
    /// `Config::refuse_if`): their generation and why.
    refusals: (UnboundedSender<Refused>, UnboundedReceiver<Refused>),
    /// Canaries a caller refused, by SHA-256 (the newest few), and why.
    caller_refused: Vec<(String, Vec<String>)>,
    /// SHA-256 of the live value last read.
    live_sha: String,
}

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

/// A value a caller refused: its generation, and why.
pub(super) type Refused = (u64, Vec<String>);

/// Canaries remembered as refused by the caller, at most.
const CALLER_REFUSED: usize = 8;

impl<T> Follower<T>
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    pub(super) fn new(registry: Registry, path: String, checks: Vec<Check<T>>, saves: bool) -> Self {
        Follower {
            registry,
            path,
            checks,
            last_read: (None, None),
            last_refused: None,
            last_refused_canary: None,
            last_bad_canary: None,
            rejected: Arc::new(AtomicU64::new(0)),
            saves,
            applied: Applied::Other,
            report: None,
            refusals: tokio::sync::mpsc::unbounded_channel(),
            caller_refused: Vec::new(),
            live_sha: String::new(),
        }
    }

    /// Where a handle sends the values its caller refused.
    pub(super) fn refusals(&self) -> UnboundedSender<Refused> {
        self.refusals.0.clone()
    }

    /// The caller refused the value of generation `seq`: a canary is not
    /// applied again (read again: back to the live value); a live value is
    /// reported as refused.
    fn caller_refused(&mut self, seq: u64, reasons: Vec<String>, held: u64) -> bool {
        if seq != held {
            return false;
        }
        match self.applied.clone() {
            Applied::Canary { sha256, .. } => {
                if self.caller_refused.len() >= CALLER_REFUSED {
                    self.caller_refused.remove(0);
                }
                self.caller_refused.push((sha256, reasons));
                self.forget();
                true
            }
            Applied::Stable { .. } => {
                let refusal = Refusal { canary: false, sha256: self.live_sha.clone(), reasons };
                self.send_report(Some(refusal));
                false
            }
            Applied::Other => false,
        }
    }

    /// Forgets what was read: the next event reads the node again.
    pub(super) fn forget(&mut self) {
        self.last_read = (None, None);
    }

    /// The last good value saved in the cache file, if it still passes the
    /// type and the checks.
    pub(super) fn saved(&self) -> Option<(Arc<T>, i32, i64)> {
        let good = self.registry.shared.cache_file.as_ref()?.lookup_config(&self.path)?;
        let value = evaluate::<T>(good.value.as_bytes(), &self.checks, None).ok()?;
        Some((Arc::new(value), good.version, good.mzxid))
    }

    /// Follows the node and its canary until every handle is gone or the
    /// registry closes. `unread`: `build` gave up on its first read: read
    /// first thing.
    pub(super) async fn run(
        mut self,
        mut live: Subscription,
        mut canary: Subscription,
        tx: watch::Sender<Current<T>>,
        unread: bool,
    ) {
        let mut pending = unread;
        loop {
            // Nothing read yet to read through: wait for it.
            if !pending || live.latest().is_none() {
                tokio::select! {
                    next = live.next() => if next.is_none() { return },
                    next = canary.next() => if next.is_none() { return },
                    refused = self.refusals.1.recv() => {
                        let Some((seq, reasons)) = refused else { return };
                        let held = tx.borrow().seq;
                        if !self.caller_refused(seq, reasons, held) {
                            continue;
                        }
                    }
                    () = tx.closed() => return,
                }
            }
            pending = false;
            let zxid = |s: &Subscription| s.latest().and_then(|snapshot| snapshot.stat.map(|s| s.mzxid));
            let key = (zxid(&live), zxid(&canary));
            if key.0.is_some() && key == self.last_read {
                continue;
            }
            let outcome = tokio::select! {
                outcome = self.read(key.0) => outcome,
                () = tx.closed() => return,
            };
            match outcome {
                Outcome::Good(value, version, mzxid, applied) => tx.send_modify(|c| {
                    c.value = Arc::new(value);
                    c.version = Some(version);
                    c.mzxid = mzxid;
                    c.status = ConfigStatus::Valid { version };
                    c.applied = applied;
                    c.seq += 1;
                }),
                Outcome::Refused(version, reasons) => {
                    tx.send_modify(|c| c.status = ConfigStatus::Rejected { version, reasons });
                }
                Outcome::Missing => tx.send_modify(|c| c.status = ConfigStatus::Missing),
                Outcome::Unreachable => {}
            }
        }
    }

    /// Reads the node's bytes, its schema and its canary (the snapshots
    /// keep only decoded objects), judges them, and reports what it
    /// applied. Retries through a lost connection until the registry
    /// closes.
    pub(super) async fn read(&mut self, mzxid: Option<i64>) -> Outcome<T> {
        if mzxid.is_none() {
            self.last_read = (None, None);
            return Outcome::Missing;
        }
        let registry = self.registry.clone();
        let layout = registry.layout(&self.path);
        let mut delay = Duration::from_millis(50);
        let optional = |read: Result<(Vec<u8>, zookeeper_client::Stat)>| match read {
            Ok(found) => Ok(Some(found)),
            Err(e) if e.is_no_node() => Ok(None),
            Err(e) => Err(e),
        };
        let (bytes, stat, schema, canary) = loop {
            let attempt = async {
                let client = registry.config_client().await?;
                let s = &registry.shared;
                let (live, schema, canary) = tokio::join!(
                    s.call("get_data", &self.path, client.get_data(&self.path)),
                    s.call("get_data", &layout.schema, client.get_data(&layout.schema)),
                    s.call("get_data", &layout.canary, client.get_data(&layout.canary)),
                );
                Ok::<_, Error>((live, optional(schema)?, optional(canary)?))
            };
            match attempt.await {
                Ok((Ok((bytes, stat)), schema, canary)) => break (bytes, stat, schema, canary),
                Ok((Err(e), _, _)) if e.is_no_node() => {
                    self.last_read = (None, None);
                    return Outcome::Missing;
                }
                Err(Error::Closed) | Ok((Err(Error::Closed), _, _)) => return Outcome::Unreachable,
                Ok((Err(e), _, _)) | Err(e) => {
                    if registry.state() == State::Closed {
                        return Outcome::Unreachable;
                    }
                    if matches!(e, Error::NotAuthorized { .. }) && delay == Duration::from_millis(50) {
                        tracing::warn!(path = %self.path, "cannot read the configuration (retrying): {e}");
                    }
                    tracing::debug!(path = %self.path, "reading the configuration again: {e}");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        };
        self.last_read = (Some(stat.mzxid), canary.as_ref().map(|(_, s)| s.mzxid));
        let canary = canary.and_then(|(bytes, cstat)| match Canary::parse(&self.path, &bytes, cstat.version) {
            Ok(canary) => canary,
            Err(reason) => {
                if self.last_bad_canary != Some(cstat.mzxid) {
                    self.last_bad_canary = Some(cstat.mzxid);
                    tracing::warn!(path = %self.path, "ignoring the canary, which cannot be read: {reason}");
                }
                None
            }
        });
        if canary.is_some() {
            self.start_reporting();
        }
        let validator = match &schema {
            Some((schema, sstat)) => match registry.schemas.get(&self.path, schema, sstat.mzxid) {
                Ok(validator) => validator,
                Err(e) => return self.refuse(stat.version, vec![e.to_string()]),
            },
            None => None,
        };
        let config = &registry.shared.config;
        let identity = config.identity_or_default();
        // A canary over an older live version applies to no one: a value
        // published since (a hotfix) reaches every client.
        let mine = canary.filter(|c| {
            c.base_version == stat.version && c.rule.matches(&self.path, &identity, &config.labels)
        });
        let mut refused_canary = None;
        self.live_sha = crate::release::sha256_hex(&bytes);
        if let Some(canary) = mine {
            let by_caller = self.caller_refused.iter().find(|(sha, _)| *sha == canary.sha256);
            let judged = match by_caller {
                // Counted by the caller, and said by it.
                Some((_, reasons)) => Err((reasons.clone(), false)),
                None => {
                    evaluate::<T>(&canary.value, &self.checks, validator.as_deref()).map_err(|r| (r, true))
                }
            };
            match judged {
                Ok(value) => {
                    let applied =
                        Applied::Canary { base_version: canary.base_version, sha256: canary.sha256.clone() };
                    self.applied = applied.clone();
                    self.send_report(None);
                    return Outcome::Good(value, stat.version, stat.mzxid, applied);
                }
                Err((reasons, ours)) => {
                    if ours && self.last_refused_canary.as_deref() != Some(canary.sha256.as_str()) {
                        self.last_refused_canary = Some(canary.sha256.clone());
                        self.rejected.fetch_add(1, Ordering::Relaxed);
                        crate::stats::Counters::bump(&self.registry.shared.counters.config_rejections);
                        tracing::warn!(
                            path = %self.path,
                            rule = %canary.rule,
                            "canary refused, running the live value: {}",
                            reasons.join("; ")
                        );
                    }
                    refused_canary = Some(Refusal { canary: true, sha256: canary.sha256, reasons });
                }
            }
        }
        match evaluate::<T>(&bytes, &self.checks, validator.as_deref()) {
            Ok(value) => {
                self.last_refused = None;
                if self.saves {
                    save(
                        &registry.shared,
                        &self.path,
                        stat.version,
                        stat.mzxid,
                        String::from_utf8_lossy(&bytes).into_owned(),
                    );
                }
                self.applied = Applied::Stable { version: stat.version };
                self.send_report(refused_canary);
                Outcome::Good(value, stat.version, stat.mzxid, self.applied.clone())
            }
            Err(reasons) => {
                let refusal = Refusal { canary: false, sha256: crate::release::sha256_hex(&bytes), reasons };
                self.send_report(refused_canary.or(Some(refusal.clone())));
                self.refuse(stat.version, refusal.reasons)
            }
        }
    }

    fn refuse(&mut self, version: i32, reasons: Vec<String>) -> Outcome<T> {
        if self.last_refused != Some(version) {
            self.last_refused = Some(version);
            self.rejected.fetch_add(1, Ordering::Relaxed);
            crate::stats::Counters::bump(&self.registry.shared.counters.config_rejections);
            tracing::warn!(
                path = %self.path,
                version,
                "configuration refused, keeping the last good value: {}",
                reasons.join("; ")
            );
        }
        Outcome::Refused(version, reasons)
    }

    /// Starts the task that keeps this client's report, once.
    fn start_reporting(&mut self) {
        if self.report.is_some() || self.registry.shared.config.readonly {
            return;
        }
        let (tx, rx) = watch::channel(Vec::new());
        self.report = Some(tx);
        let layout = self.registry.layout(&self.path);
        let identity = crate::release::escape(&self.registry.shared.config.identity_or_default());
        let node = format!("{}/{identity}~{:016x}", layout.clients, rand::random::<u64>());
        let registry = self.registry.clone();
        self.registry.shared.tasks.spawn(report(registry, node, rx));
    }

    fn send_report(&self, refused: Option<Refusal>) {
        if let Some(tx) = &self.report {
            let report = ClientReport::new(&self.registry, self.applied.clone(), refused);
            let bytes = report.to_bytes();
            tx.send_if_modified(|held| {
                // `since` changes with every report: compare the rest.
                let same = ClientReport::parse_bytes(held).is_some_and(|mut h| {
                    h.since.clone_from(&report.since);
                    h == report
                });
                if !same {
                    *held = bytes;
                }
                !same
            });
        }
    }
}

/// Keeps this client's report at `node`, an ephemeral node of the
/// registry's session (kept through reconnects and expiry as a
/// registration is), until the follower ends; then removes it.
async fn report(registry: Registry, node: String, mut rx: watch::Receiver<Vec<u8>>) {
    let mut warned = false;
    while rx.changed().await.is_ok() {
        let bytes = rx.borrow_and_update().clone();
        match registry.set_node_raw(&node, bytes).await {
            Ok(()) => {}
            Err(Error::Closed) => return,
            // Kept, and made once possible.
            Err(e) if e.is_retryable() => tracing::debug!(node, "the configuration report waits: {e}"),
            Err(e) => {
                if !warned {
                    warned = true;
                    tracing::warn!(node, "cannot report which configuration this client runs: {e}");
                }
            }
        }
    }
    if let Err(e) = registry.unset(&node).await {
        tracing::debug!(node, "the configuration report stays until the session ends: {e}");
    }
}

/// Saves a good value to the cache file, off the runtime (the file is
/// written under a lock); of two saves, the later write wins.
pub(super) fn save(shared: &Arc<crate::session::Shared>, path: &str, version: i32, mzxid: i64, text: String) {
    if shared.cache_file.is_none() {
        return;
    }
    if tokio::runtime::Handle::try_current().is_err() {
        // A caller's own thread (`Config::save_current` from the blocking
        // or Python faces): save here.
        if let Some(file) = &shared.cache_file {
            file.save_config(path, version, mzxid, text);
        }
        return;
    }
    let (shared_, path) = (shared.clone(), path.to_string());
    shared.tasks.spawn_blocking(move || {
        if let Some(file) = &shared_.cache_file {
            file.save_config(&path, version, mzxid, text);
        }
    });
}

/// Judges a value: JSON, then the schema, then the type, then the checks.
pub(super) fn evaluate<T: DeserializeOwned>(
    bytes: &[u8],
    checks: &[Check<T>],
    schema: Option<&jsonschema::Validator>,
) -> std::result::Result<T, Vec<String>> {
    let json: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| vec![format!("not JSON: {e}")])?;
    if let Some(schema) = schema {
        let found = crate::release::schema::violations(schema, &json);
        if !found.is_empty() {
            return Err(found
                .into_iter()
                .map(|v| format!("schema, at {:?}: {}", v.pointer, v.message))
                .collect());
        }
    }
    let value: T = serde_json::from_value(json).map_err(|e| vec![format!("does not fit the type: {e}")])?;
    let failed: Vec<String> = checks.iter().filter_map(|check| check(&value).err()).collect();
    if failed.is_empty() {
        Ok(value)
    } else {
        Err(failed.into_iter().map(|e| format!("check failed: {e}")).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Check;
    use super::*;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Web {
        pool: u32,
    }

    #[test]
    fn a_value_is_judged_json_then_schema_then_type_then_checks() {
        let positive: Check<Web> =
            Arc::new(|w: &Web| if w.pool > 0 { Ok(()) } else { Err("pool must be positive".into()) });
        let checks = vec![positive];
        assert_eq!(evaluate::<Web>(b"{\"pool\": 3}", &checks, None), Ok(Web { pool: 3 }));
        assert!(evaluate::<Web>(b"garbage", &checks, None).unwrap_err()[0].starts_with("not JSON"));
        assert!(
            evaluate::<Web>(b"\"text\"", &checks, None).unwrap_err()[0].starts_with("does not fit the type")
        );
        assert!(evaluate::<Web>(b"{\"pool\": -1}", &checks, None).unwrap_err()[0].starts_with("does not fit"));
        assert_eq!(
            evaluate::<Web>(b"{\"pool\": 0}", &checks, None).unwrap_err(),
            ["check failed: pool must be positive"]
        );
        let schema = crate::release::schema::compile(
            "/c",
            &serde_json::json!({"properties": {"pool": {"maximum": 10}}}),
        )
        .unwrap();
        let refused = evaluate::<Web>(b"{\"pool\": 11}", &checks, Some(&schema)).unwrap_err();
        assert!(refused[0].starts_with("schema, at \"/pool\""), "{refused:?}");
    }
}
