//! Case 9: a 10,000-instance Curator service: listing it decoded, and
//! picking from it, ndsr against Curator 5.4.0 itself (the test kit's
//! Curator oracle, `ndsr_testkit::curator`), in one run.

use std::sync::Arc;
use std::time::Instant;

use ndsr::discovery::{CuratorInstance, Instance, Selector, Strategy};
use zookeeper_client::{Acls, CreateMode};

use crate::common::{fresh, raw, Ctx, Row};
use crate::stats;

pub async fn run(ctx: &Ctx) -> Result<Vec<Row>, String> {
    let n = ctx.size(10_000, 2_000);
    let picks = ctx.size(100_000, 20_000);
    // Curator's getInstance copies and filters the whole list on each
    // call: fewer of them.
    let curator_picks = ctx.size(10_000, 2_000);
    let base = fresh("discovery");
    let dir = format!("{base}/web");
    // The service, written by a plain client with Curator's bytes.
    let client = raw(&ctx.servers()).await;
    client
        .mkdir(&dir, &CreateMode::Persistent.with_acls(Acls::anyone_all()))
        .await
        .map_err(|e| e.to_string())?;
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let bytes: Vec<(String, Vec<u8>)> = chunk
            .iter()
            .map(|i| {
                let id = format!("i-{i:05}");
                let instance = CuratorInstance {
                    registration_time_utc: 1_795_859_981_132,
                    ..CuratorInstance::new("web", &id, &format!("10.0.{}.{}", i / 256, i % 256), 8080)
                };
                (format!("{dir}/{id}"), instance.encode())
            })
            .collect();
        let creates = bytes.iter().map(|(p, b)| client.create(p, b, &opts));
        for created in futures::future::join_all(creates).await {
            created.map_err(|e| e.to_string())?;
        }
    }

    // ndsr: the first listing (watch and read every instance), then a
    // listing from the cache, then picks.
    let registry = ndsr::Registry::builder(&ctx.servers()).build().await.map_err(|e| e.to_string())?;
    let start = Instant::now();
    let listed = registry.instances(&dir, None).await.map_err(|e| e.to_string())?;
    let cold_ms = start.elapsed().as_secs_f64() * 1000.0;
    if listed.instances.len() != n || !listed.bad.is_empty() {
        return Err(format!("ndsr listed {} instances, {} bad", listed.instances.len(), listed.bad.len()));
    }
    let mut warm = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        std::hint::black_box(registry.instances(&dir, None).await.map_err(|e| e.to_string())?);
        warm.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    // One instance changed before each listing: only it is decoded again.
    let mut after_change = Vec::new();
    for round in 0..5 {
        let id = format!("i-{:05}", round * 7);
        let instance = CuratorInstance {
            registration_time_utc: 1_795_859_981_132,
            ..CuratorInstance::new("web", &id, "10.1.0.1", 9000 + round as u16)
        };
        let path = format!("{dir}/{id}");
        let stat = client.set_data(&path, &instance.encode(), None).await.map_err(|e| e.to_string())?;
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        // Until the change is in the cache (it comes by a watch event).
        loop {
            let cached = registry.get(&path).await.map_err(|e| e.to_string())?;
            if cached.stat.is_some_and(|s| s.version == stat.version) {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("{path}: the change never reached the cache"));
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let start = Instant::now();
        let list = registry.instances(&dir, None).await.map_err(|e| e.to_string())?;
        after_change.push(start.elapsed().as_secs_f64() * 1000.0);
        if !list.instances.iter().any(|i| i.key == id && i.port == Some(9000 + round as u16)) {
            return Err(format!("{id}'s change is not in the listing"));
        }
    }
    let instances: Vec<Arc<Instance>> = listed.instances.clone();
    let selector = Selector::new(Strategy::RoundRobin);
    let start = Instant::now();
    for _ in 0..picks {
        std::hint::black_box(selector.pick(&instances).map_err(|e| e.to_string())?);
    }
    let pick_ns = start.elapsed().as_nanos() as f64 / picks as f64;
    registry.close().await;

    // Curator, in a JVM of its own, on the same service.
    let classes = tempfile::tempdir().map_err(|e| e.to_string())?;
    let classpath = ndsr_testkit::curator::compile_oracle(classes.path()).map_err(|e| e.to_string())?;
    let args = ["bench".to_string(), ctx.servers(), base.clone(), "web".into(), curator_picks.to_string()];
    let out = tokio::process::Command::new("java")
        .arg("-cp")
        .arg(&classpath)
        .arg("CuratorOracle")
        .args(&args)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("java: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let curator: serde_json::Value = serde_json::from_str(text.lines().last().unwrap_or(""))
        .map_err(|e| format!("Curator's bench: {e}: {text}{}", String::from_utf8_lossy(&out.stderr)))?;
    let number = |k: &str| curator[k].as_f64();
    let note = format!(
        "{n} Curator instances written by a plain client; ndsr's first listing watches and reads every instance, \
         Curator's queryForInstances reads them one after another; picks: {picks} round-robin picks by ndsr, \
         {curator_picks} by Curator's ServiceProvider over its ServiceCache (started in {:.0} ms) after as many \
         warm-up picks",
        number("provider_start_ms").unwrap_or(f64::NAN)
    );
    Ok(vec![
        Row::compare(
            "9 discovery",
            &format!("list {n} instances decoded, first time, ms"),
            Some(cold_ms),
            "Curator queryForInstances",
            number("query_ms"),
            "",
            None,
            note.clone(),
        ),
        Row {
            met: stats::median(&warm).map(|ms| ms <= 1.0),
            ..Row::compare(
                "9 discovery",
                &format!("list {n} instances decoded, from the cache, ms (median of 5)"),
                stats::median(&warm),
                "Curator queryForInstances",
                number("query_ms"),
                "at most 1 ms (a kept list)",
                None,
                note.clone(),
            )
        },
        Row::compare(
            "9 discovery",
            &format!("list {n} instances after one changed, ms (median of 5)"),
            stats::median(&after_change),
            "Curator queryForInstances",
            number("query_ms"),
            "",
            None,
            note.clone(),
        ),
        Row::compare(
            "9 discovery",
            &format!("round-robin pick among {n}, ns/op"),
            Some(pick_ns),
            "Curator ServiceProvider.getInstance",
            number("pick_ns"),
            "faster than Curator (ratio < 1); no allocation (tests/alloc_free.rs)",
            Some(|r| r < 1.0),
            note,
        ),
    ])
}
