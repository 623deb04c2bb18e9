//! Faults beyond a plain restart or expiry (issue 14): a server that comes
//! back with a wiped data directory, its zxid gone back to zero.

mod common;

use common::*;
use ndsr_testkit::{eventually, unique_path, ZkServer};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_server_gets_every_registration_back_under_a_new_session() {
    let server = ZkServer::new().unwrap();
    let registrant = registry(&server.connect_string()).await;
    let watcher = registry(&server.connect_string()).await;
    let dir = unique_path("wiped");
    let names: Vec<String> = (0..20).map(|i| format!("10.0.0.{i}:80")).collect();
    for (i, name) in names.iter().enumerate() {
        registrant.set_node(&format!("{dir}/{name}"), json!({"i": i})).await.unwrap();
    }
    // Make the zxid well ahead of a fresh server's.
    for i in 0..500 {
        registrant.set_data(&format!("{dir}-config"), json!({"v": i})).await.unwrap();
    }
    let listed = watcher.get(&dir).await.unwrap();
    assert_eq!(listed.children.len(), 20);
    let old = registrant.session().unwrap();

    server.restart_wiped().unwrap();
    let truth = other(&server.connect_string()).await;
    eventually(WAIT, "every registration back, owned by a new session", || async {
        let Some(new) = registrant.session() else { return false };
        if new.id() == old.id() {
            return false;
        }
        let Ok(children) = truth.list_children(&dir).await else { return false };
        if children.len() != names.len() {
            return false;
        }
        for name in &names {
            match truth.check_stat(&format!("{dir}/{name}")).await {
                Ok(Some(stat)) if stat.ephemeral_owner == new.id().0 => {}
                _ => return false,
            }
        }
        true
    })
    .await
    .unwrap();
    eventually(WAIT, "the watcher sees them all, fresh", || async {
        matches!(watcher.get(&dir).await, Ok(s) if s.children.len() == names.len() && !s.is_stale())
    })
    .await
    .unwrap();
    // The registrant said that the server's history went back, once (the
    // watcher writes nothing: it cannot tell).
    assert_eq!(registrant.stats().history_rewinds, 1, "{:?}", registrant.stats());
    // The persistent node written before the wipe is gone with the data
    // directory: ndsr does not invent it (it was not a registration).
    assert!(truth.check_stat(&format!("{dir}-config")).await.unwrap().is_none());
    registrant.close().await;
    watcher.close().await;
}
