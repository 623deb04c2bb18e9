//! The dashboard's Elections panel in a real headless browser: a path
//! typed in shows its layout, leader and contenders, follows a
//! resignation live, and says why a path outside the roots is refused.
//! Screenshots go to `target/tmp/dashboard/`.

#[path = "common/browser.rs"]
mod browser;
mod common;

use browser::{browser, screenshot, text_with, Driver};
use common::agent::Agent;
use common::WAIT;
use fantoccini::{Client, Locator};
use ndsr::election::ElectionLayout;
use ndsr_testkit::{unique_path, ZkServer};

/// Types `path` into the panel's field (replacing what is there) and
/// submits it with Enter.
async fn show(client: &Client, path: &str) {
    let input = client.find(Locator::Css("#election-path")).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(&format!("{path}\u{e007}")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_elections_panel_shows_the_leader_and_follows_a_resignation() {
    let server = ZkServer::shared().connect_string();
    let root = unique_path("dashboard-elect");
    let path = format!("{root}/cron");
    let (one, two) = (
        ndsr::Registry::builder(&server).build().await.unwrap(),
        ndsr::Registry::builder(&server).build().await.unwrap(),
    );
    let a = one.election(&path, "host-a").layout(ElectionLayout::Kazoo).join().await.unwrap();
    let _b = two.election(&path, "host-b").layout(ElectionLayout::Kazoo).join().await.unwrap();
    let config = format!("roots = [\"{root}\"]\n");
    let agent = {
        let server = server.clone();
        tokio::task::spawn_blocking(move || Agent::start(&server, &config)).await.unwrap()
    };
    let driver = Driver::start();
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&shots).unwrap();
    let client = browser(&driver, &agent.dir.path().join("profile")).await;
    let wait = || client.wait().at_most(WAIT).every(std::time::Duration::from_millis(50));
    client.goto(&agent.url).await.unwrap();
    wait().for_element(Locator::Css("#session-state[data-state=connected]")).await.unwrap();

    show(&client, &path).await;
    let shown = text_with(&client, "[data-testid=election]", "layout kazoo").await;
    assert!(shown.contains(&path), "{shown:?}");
    let leader = text_with(&client, "[data-testid=election-leader]", "host-a").await;
    assert_eq!(leader, "host-a");
    let rows = client.find_all(Locator::Css("[data-testid=election-contender]")).await.unwrap();
    let mut ids = Vec::new();
    for row in &rows {
        ids.push(row.attr("data-id").await.unwrap().unwrap_or_default());
    }
    assert_eq!(ids, ["host-a", "host-b"], "leader first");
    let first = rows[0].text().await.unwrap();
    assert!(first.contains("leads") && first.contains("__lock__"), "{first:?}");
    screenshot(&client, &shots, "dashboard-election.png").await;

    // The leader resigns: the panel shows the next one without a reload.
    a.resign().await;
    text_with(&client, "[data-testid=election-leader]", "host-b").await;
    let rows = client.find_all(Locator::Css("[data-testid=election-contender]")).await.unwrap();
    assert_eq!(rows.len(), 1);

    // A path with no contenders, then one outside the roots.
    show(&client, &format!("{root}/nothing")).await;
    let shown = text_with(&client, "[data-testid=election]", "No contenders.").await;
    assert!(shown.contains("no leader") && shown.contains("no layout yet"), "{shown:?}");
    show(&client, "/elsewhere/e").await;
    let shown = text_with(&client, "[data-testid=election]", "outside the agent's roots").await;
    assert!(shown.contains("/elsewhere/e"), "{shown:?}");
    client.close().await.unwrap();
}
