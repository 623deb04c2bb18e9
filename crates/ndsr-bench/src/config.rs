//! Case 11: configuration releases. 1,000 serial publishes, each with its
//! history entry in the same transaction, against 1,000 bare `setData`
//! of the raw client, in alternating rounds; and a typed `get()` from
//! memory.

use std::time::Instant;

use ndsr::release::PublishOptions;
use zookeeper_client::{Acls, CreateMode};

use crate::common::{fresh, raw, Ctx, Row};
use crate::stats;

#[derive(serde::Deserialize)]
struct Web {
    #[allow(dead_code)]
    pool: u64,
}

pub async fn run(ctx: &Ctx) -> Result<Vec<Row>, String> {
    let writes = ctx.size(1000, 200);
    let rounds = ctx.size(5, 3);
    let base = fresh("config");
    let client = raw(&ctx.servers()).await;
    let bare = format!("{base}-bare");
    let options = CreateMode::Persistent.with_acls(Acls::anyone_all());
    client.mkdir(&bare, &options).await.map_err(|e| e.to_string())?;
    let registry =
        ndsr::Registry::builder(&ctx.servers()).history_keep(100).build().await.map_err(|e| e.to_string())?;
    let published = format!("{base}-published");
    registry
        .publish_value(&published, &serde_json::json!({"pool": 0}), PublishOptions::default())
        .await
        .map_err(|e| e.to_string())?;

    // The floor of 'value and record in one transaction': the raw
    // client's multi of the same operations (set the value, create a
    // sequential entry of the same size, remove the oldest beyond 100).
    let records = format!("{base}-records");
    client.mkdir(&records, &options).await.map_err(|e| e.to_string())?;
    let entry = vec![b'x'; 420];
    let sequential = CreateMode::PersistentSequential.with_acls(Acls::anyone_all());
    let mut made: std::collections::VecDeque<String> = std::collections::VecDeque::new();

    let (mut ours, mut theirs, mut floor) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let start = Instant::now();
        for n in 0..writes {
            let value = serde_json::json!({"pool": n, "round": round});
            let message = PublishOptions::message(format!("round {round} #{n}"));
            registry.publish_value(&published, &value, message).await.map_err(|e| e.to_string())?;
        }
        ours.push(start.elapsed().as_secs_f64() * 1000.0);
        let start = Instant::now();
        for n in 0..writes {
            let value =
                serde_json::to_vec(&serde_json::json!({"pool": n, "round": round})).unwrap_or_default();
            client.set_data(&bare, &value, None).await.map_err(|e| e.to_string())?;
        }
        theirs.push(start.elapsed().as_secs_f64() * 1000.0);
        let start = Instant::now();
        for n in 0..writes {
            let value =
                serde_json::to_vec(&serde_json::json!({"pool": n, "round": round})).unwrap_or_default();
            let mut multi = client.new_multi_writer();
            multi.add_check_version(&records, -1).map_err(|e| e.to_string())?;
            multi.add_set_data(&bare, &value, None).map_err(|e| e.to_string())?;
            multi.add_create(&format!("{records}/r-"), &entry, &sequential).map_err(|e| e.to_string())?;
            if made.len() >= 100 {
                let oldest = made.pop_front().unwrap_or_default();
                multi.add_delete(&oldest, None).map_err(|e| e.to_string())?;
            }
            let results = multi.commit().await.map_err(|e| e.to_string())?;
            for result in results {
                if let zookeeper_client::MultiWriteResult::Create { path, .. } = result {
                    made.push_back(path);
                }
            }
        }
        floor.push(start.elapsed().as_secs_f64() * 1000.0);
    }

    let web = registry.config::<Web>(&published).build().await.map_err(|e| e.to_string())?;
    let iters = ctx.size(2_000_000, 200_000);
    let mut gets = Vec::new();
    for _ in 0..rounds {
        let start = Instant::now();
        for _ in 0..iters {
            std::hint::black_box(web.get());
        }
        gets.push(start.elapsed().as_nanos() as f64 / iters as f64);
    }
    registry.close().await;
    let _ = client.delete(&bare, None).await;
    Ok(vec![
        Row::compare(
            "11 config",
            &format!("{writes} serial publishes with history, ms (median of rounds)"),
            stats::median(&ours),
            "raw setData",
            stats::median(&theirs),
            "at most 1.3x bare setData",
            Some(|r| r <= 1.3),
            format!("{rounds} alternating rounds; each publish is one multi (value, entry, oldest entry removed, schema checked)"),
        ),
        Row::compare(
            "11 config",
            &format!("{writes} serial publishes with history, ms (median of rounds)"),
            stats::median(&ours),
            "raw multi, same ops",
            stats::median(&floor),
            "(a floor: value and record in one transaction)",
            None,
            format!("{rounds} alternating rounds; the raw client's multi: check, set, create entry, delete oldest"),
        ),
        Row::compare(
            "11 config",
            "typed get() of the last good value, ns/op (median of rounds)",
            stats::median(&gets),
            "bound",
            Some(200.0),
            "at most 200 ns",
            Some(|r| r <= 1.0),
            format!("{rounds} rounds of {iters} gets"),
        ),
    ])
}
