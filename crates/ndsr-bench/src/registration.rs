//! Cases 4 and 5: registering many nodes, and getting them all back after a
//! forced session expiry.

use std::time::{Duration, Instant};

use ndsr_testkit::FaultProxy;
use zookeeper_client::{Acls, CreateMode};

use crate::common::{fresh, raw, until_count, Ctx, Row};
use crate::python;

async fn ndsr_register(registry: &ndsr::Registry, parent: &str, n: usize) -> Result<(), String> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (registry, path) = (registry.clone(), format!("{parent}/n{i:06}"));
        tasks.spawn(async move { registry.set_node(&path, ndsr::Data::None).await });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn python_case(ctx: &Ctx, case: &str, parent: &str, n: usize) -> Result<f64, String> {
    let (python, servers, parent, n) = (ctx.python.clone(), ctx.servers(), parent.to_string(), n.to_string());
    let case = case.to_string();
    let value = tokio::task::spawn_blocking(move || python::run(&python, &servers, &[&case, &parent, &n]))
        .await
        .map_err(|e| e.to_string())??;
    value["seconds"].as_f64().ok_or_else(|| "no seconds".to_string())
}

/// One ndsr round: every `set_node` issued at once, until all exist.
async fn ndsr_round(ctx: &Ctx, checker: &zookeeper_client::Client, n: usize) -> Result<Option<f64>, String> {
    let parent = fresh("register-ndsr");
    let registry = ndsr::Registry::builder(&ctx.servers()).build().await.map_err(|e| e.to_string())?;
    let start = Instant::now();
    ndsr_register(&registry, &parent, n).await?;
    let all = until_count(checker, &parent, n, Duration::from_secs(600)).await;
    let seconds = all.then(|| start.elapsed().as_secs_f64());
    registry.close().await;
    Ok(seconds)
}

/// What a floor round watches besides its creates.
#[derive(Clone, Copy, PartialEq)]
enum Watch {
    /// Nothing: bare creates.
    None,
    /// A persistent recursive watch on each node, added before its create.
    EachNode,
    /// One persistent recursive watch on the parent, added before the
    /// creates, whose events (one per create) a task reads meanwhile: what
    /// a registry that watches its registrations' parent cannot avoid.
    Parent,
}

/// One floor round: raw pipelined ephemeral creates (and the watches
/// `watch` says), until all exist.
async fn raw_round(
    ctx: &Ctx,
    checker: &zookeeper_client::Client,
    n: usize,
    watch: Watch,
) -> Result<Option<f64>, String> {
    let parent = fresh("register-raw");
    let client = raw(&ctx.servers()).await;
    // Every peer's timer includes making the parent: ndsr and the original
    // make it as part of registering.
    let start = Instant::now();
    client
        .mkdir(&parent, &CreateMode::Persistent.with_acls(Acls::anyone_all()))
        .await
        .map_err(|e| e.to_string())?;
    let reading = match watch {
        Watch::Parent => {
            let mut watcher = client
                .watch(&parent, zookeeper_client::AddWatchMode::PersistentRecursive)
                .await
                .map_err(|e| e.to_string())?;
            Some(tokio::spawn(async move {
                let mut created = 0;
                while created < n {
                    let event = watcher.changed().await;
                    match event.event_type {
                        zookeeper_client::EventType::NodeCreated => created += 1,
                        zookeeper_client::EventType::Session if event.session_state.is_terminated() => break,
                        _ => {}
                    }
                }
            }))
        }
        Watch::None | Watch::EachNode => None,
    };
    let opts = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    let paths: Vec<String> = (0..n).map(|i| format!("{parent}/n{i:06}")).collect();
    let mut watches = Vec::new();
    let mut creates = Vec::new();
    for p in &paths {
        if watch == Watch::EachNode {
            watches.push(client.watch(p, zookeeper_client::AddWatchMode::PersistentRecursive));
        }
        creates.push(client.create(p, b"", &opts));
    }
    let (watched, created) =
        tokio::join!(futures::future::join_all(watches), futures::future::join_all(creates));
    for created in created {
        created.map_err(|e| e.to_string())?;
    }
    let limit = Duration::from_secs(600);
    // Timed as ndsr's rounds are: until all exist (the events are read
    // meanwhile, as ndsr reads its own).
    let seconds = until_count(checker, &parent, n, limit).await.then(|| start.elapsed().as_secs_f64());
    if let Some(reading) = reading {
        reading.abort();
        let _ = reading.await;
    }
    drop(watched);
    Ok(seconds)
}

pub async fn registration(ctx: &Ctx) -> Result<Vec<Row>, String> {
    let n = ctx.size(10_000, 1_000);
    let rounds = 3;
    let checker = raw(&ctx.servers()).await;
    let (mut ours, mut floor, mut watched_floor) = (Vec::new(), Vec::new(), Vec::new());
    let mut parent_floor = Vec::new();
    for _ in 0..rounds {
        ours.extend(ndsr_round(ctx, &checker, n).await?);
        floor.extend(raw_round(ctx, &checker, n, Watch::None).await?);
        watched_floor.extend(raw_round(ctx, &checker, n, Watch::EachNode).await?);
        parent_floor.extend(raw_round(ctx, &checker, n, Watch::Parent).await?);
    }
    // The original: set_node one after another (its API is blocking); one
    // round, as it takes about as long as all the others together.
    let theirs = python_case(ctx, "register", &fresh("register-py"), n).await?;
    let note = format!(
        "{n} registrations; {rounds} alternating rounds of ndsr, raw, raw+watch, raw under a watched parent (complete: {} / {} / {} / {}), then one of the original",
        ours.len(),
        floor.len(),
        watched_floor.len(),
        parent_floor.len()
    );
    let ours = crate::stats::median(&ours);
    let median = crate::stats::median;
    Ok(vec![
        Row::compare(
            "4 registration",
            "seconds until all exist (median)",
            ours,
            "raw pipelined creates",
            median(&floor),
            "within 1.5x of the floor",
            Some(|r| r <= 1.5),
            note.clone(),
        ),
        Row::compare(
            "4 registration",
            "seconds until all exist (median)",
            ours,
            "raw watch+create",
            median(&watched_floor),
            "",
            None,
            note.clone(),
        ),
        Row::compare(
            "4 registration",
            "seconds until all exist (median)",
            ours,
            "raw creates, watched parent",
            median(&parent_floor),
            "",
            None,
            note.clone(),
        ),
        Row::compare(
            "4 registration",
            "seconds until all exist (median)",
            ours,
            "original",
            Some(theirs),
            "at least 10x faster (ratio <= 0.1)",
            Some(|r| r <= 0.1),
            note,
        ),
    ])
}

pub async fn recovery(ctx: &Ctx) -> Result<Vec<Row>, String> {
    let n = ctx.size(10_000, 1_000);
    let checker = raw(&ctx.servers()).await;
    let limit = Duration::from_secs(600);

    // ndsr through a proxy, so the expiry is clean: cut, expire, heal.
    let parent = fresh("recovery-ndsr");
    let proxy = FaultProxy::start(&ctx.servers()).map_err(|e| e.to_string())?;
    let registry =
        ndsr::Registry::builder(&proxy.connect_string()).build().await.map_err(|e| e.to_string())?;
    ndsr_register(&registry, &parent, n).await?;
    if !until_count(&checker, &parent, n, limit).await {
        return Err("ndsr registrations never all appeared".into());
    }
    let session = registry.session().ok_or("no session")?;
    proxy.cut();
    ctx.server.expire_session(&session).await.map_err(|e| e.to_string())?;
    let start = Instant::now();
    proxy.heal();
    let ours = until_count(&checker, &parent, n, limit).await.then(|| start.elapsed().as_secs_f64());
    // All back, and under the new session.
    let new = registry.session().map(|s| s.id()).filter(|id| *id != session.id());
    registry.close().await;

    let theirs = python_case(ctx, "recovery", &fresh("recovery-py"), n).await?;
    let note = format!(
        "{n} registrations; from the session's expiry until all exist again{}",
        if new.is_some() { "" } else { " (WARNING: no new session seen)" }
    );
    Ok(vec![Row::compare(
        "5 recovery",
        "seconds until all are back",
        ours,
        "original",
        Some(theirs),
        "at least 10x faster (ratio <= 0.1)",
        Some(|r| r <= 0.1),
        note,
    )])
}
