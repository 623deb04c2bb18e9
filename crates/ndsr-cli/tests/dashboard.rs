//! The agent's dashboard in a real headless browser (Debian's chromium and
//! chromium-driver, which `scripts/setup.sh` installs), driven over
//! WebDriver with fantoccini: a registration made through the API shows
//! up without a reload, the keyboard works, and stopping ZooKeeper shows
//! the stale marker. Screenshots go to
//! `target/tmp/dashboard/` (cargo's directory for test files), and their
//! paths are printed.

#[path = "common/browser.rs"]
mod browser;
mod common;

use std::time::Duration;

use browser::{browser, screenshot, text_with, Driver};
use common::agent::Agent;
use common::WAIT;
use fantoccini::Locator;
use ndsr_testkit::{unique_path, ZkServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_new_registration_live_and_marks_stale_data() {
    let zk = ZkServer::new().unwrap();
    let root = unique_path("dashboard");
    let config = format!(
        "roots = [\"{root}\"]\n[http]\ntoken = \"{}\"\n[[service]]\npath = \"{root}/web\"\nname = \"web\"\n",
        common::agent::TOKEN
    );
    let server = zk.connect_string();
    let agent = tokio::task::spawn_blocking(move || Agent::start(&server, &config)).await.unwrap();
    let driver = Driver::start();
    // Screenshots go to cargo's directory for test files (under target/),
    // kept for a person to look at; the browser profile to the agent's.
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&shots).unwrap();
    let client = browser(&driver, &agent.dir.path().join("profile")).await;
    let wait = || client.wait().at_most(WAIT).every(Duration::from_millis(50));

    client.goto(&agent.url).await.unwrap();
    wait().for_element(Locator::Css("#session-state[data-state=connected]")).await.unwrap();
    wait().for_element(Locator::Css(&format!("article[data-path='{root}/web']"))).await.unwrap();

    // Register through the API: the page shows it without a reload.
    let http = agent.authorized();
    let put = {
        let url = format!("/v1/registrations{root}/web/10.0.0.9:80");
        tokio::task::spawn_blocking(move || http.put(&url, r#"{"data": {"zone": "b"}}"#)).await.unwrap()
    };
    assert_eq!(put.status, 201, "{}", put.text);
    let row = wait().for_element(Locator::Css("tr[data-key='10.0.0.9:80']")).await.unwrap();
    assert!(row.text().await.unwrap().contains("zone=b"));
    let registration =
        wait().for_element(Locator::Css(&format!("li[data-path='{root}/web/10.0.0.9:80']"))).await.unwrap();
    assert!(registration.text().await.unwrap().contains("registered"));
    screenshot(&client, &shots, "dashboard-live.png").await;

    // Maintenance: the registration's own, with its reason, then the whole
    // agent's as a banner; both gone when they end.
    let send = |method: &'static str, url: String, body: &'static str| {
        let http = agent.authorized();
        tokio::task::spawn_blocking(move || match method {
            "PUT" => http.put(&url, body),
            _ => http.delete(&url),
        })
    };
    let own = format!("/v1/maintenance{root}/web/10.0.0.9:80");
    let put = send("PUT", own.clone(), r#"{"reason": "disk swap"}"#).await.unwrap();
    assert_eq!(put.status, 200, "{}", put.text);
    let registration_css = format!("li[data-path='{root}/web/10.0.0.9:80']");
    let mark =
        text_with(&client, &format!("{registration_css} [data-testid=maintenance]"), "disk swap").await;
    assert!(mark.contains("this registration"), "{mark:?}");
    wait().for_element(Locator::Css("tr.draining[data-key='10.0.0.9:80']")).await.unwrap();
    let put = send("PUT", "/v1/maintenance".into(), r#"{"reason": "kernel upgrade"}"#).await.unwrap();
    assert_eq!(put.status, 200, "{}", put.text);
    let banner = text_with(&client, "[data-testid=maintenance-banner]:not([hidden])", "kernel upgrade").await;
    assert!(banner.contains("in maintenance"), "{banner:?}");
    screenshot(&client, &shots, "dashboard-maintenance.png").await;
    let off = send("DELETE", own, "").await.unwrap();
    assert_eq!(off.status, 200, "{}", off.text);
    let mark =
        text_with(&client, &format!("{registration_css} [data-testid=maintenance]"), "whole agent").await;
    assert!(mark.contains("kernel upgrade"), "the agent's keeps it: {mark:?}");
    let off = send("DELETE", "/v1/maintenance".into(), "").await.unwrap();
    assert_eq!(off.status, 200, "{}", off.text);
    wait().for_element(Locator::Css("[data-testid=maintenance-banner][hidden]")).await.unwrap();
    wait().for_element(Locator::Css(&format!("{registration_css}:not([data-maintenance])"))).await.unwrap();
    wait().for_element(Locator::Css("tr:not(.draining)[data-key='10.0.0.9:80']")).await.unwrap();

    // The keyboard: "/" focuses the filter, Escape clears it.
    client.find(Locator::Css("body")).await.unwrap().send_keys("/").await.unwrap();
    let active = client.active_element().await.unwrap();
    assert_eq!(active.attr("id").await.unwrap().as_deref(), Some("filter"), "/ focuses the filter");
    active.send_keys("10.0.0.1").await.unwrap();
    let rows = client.find_all(Locator::Css("tr[data-key]")).await.unwrap();
    assert!(rows.is_empty(), "the filter hides what does not match");
    active.send_keys("\u{e00c}").await.unwrap(); // Escape
    wait().for_element(Locator::Css("tr[data-key='10.0.0.9:80']")).await.unwrap();

    // Browse a node with the keyboard: Tab to the service's link, Enter.
    client
        .find(Locator::Css(&format!("article[data-path='{root}/web'] h3 button")))
        .await
        .unwrap()
        .send_keys("\u{e007}")
        .await
        .unwrap();
    wait().for_element(Locator::Css("#node .children button")).await.unwrap();

    // ZooKeeper goes away: the page says its values are stale.
    zk.stop().unwrap();
    wait().for_element(Locator::Css("[data-testid=stale-marker]")).await.unwrap();
    wait().for_element(Locator::Css("#session-state[data-state=disconnected]")).await.unwrap();
    assert!(
        client.find(Locator::Css("tr[data-key='10.0.0.9:80']")).await.is_ok(),
        "the last known instances stay on the page"
    );
    screenshot(&client, &shots, "dashboard-stale.png").await;
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_node_shows_its_history_with_each_change() {
    use ndsr::release::PublishOptions;
    let server = ZkServer::shared().connect_string();
    let root = unique_path("dashboard-config");
    let path = format!("{root}/web");
    let registry = ndsr::Registry::builder(&server).author("ops").build().await.unwrap();
    registry.publish(&path, br#"{"pool": 10}"#, PublishOptions::message("first pool")).await.unwrap();
    let more = br#"{"pool": 20, "tls": true}"#;
    registry.publish(&path, more, PublishOptions::message("more connections")).await.unwrap();
    let schema = serde_json::json!({"type": "object", "properties": {"pool": {"maximum": 50}}});
    registry.set_schema(&path, &schema, false).await.unwrap();
    let config = format!("roots = [\"{root}\"]\n");
    let agent = {
        let server = server.clone();
        tokio::task::spawn_blocking(move || Agent::start(&server, &config)).await.unwrap()
    };
    let driver = Driver::start();
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&shots).unwrap();
    let client = browser(&driver, &agent.dir.path().join("profile")).await;
    let wait = || client.wait().at_most(WAIT).every(Duration::from_millis(50));
    client.goto(&agent.url).await.unwrap();
    wait().for_element(Locator::Css("#session-state[data-state=connected]")).await.unwrap();

    // Browse the node: its releases, newest first, with who, when, why and what changed.
    client.execute("browse(arguments[0])", vec![serde_json::json!(path)]).await.unwrap();
    let newest = wait()
        .for_element(Locator::Css("[data-testid=history] li[data-version='1']"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for says in ["v1", "publish", "live", "ops@", "more connections", "~ /pool: 10 -> 20", "+ /tls: true"] {
        assert!(newest.contains(says), "no {says:?} in {newest:?}");
    }
    let first = client
        .find(Locator::Css("[data-testid=history] li[data-version='0']"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(first.contains("first pool") && !first.contains("live"), "{first:?}");
    let node = client.find(Locator::Css("#node")).await.unwrap().text().await.unwrap();
    assert!(!node.contains("null"), "a leaf node shows no stray null: {node:?}");

    // The schema: collapsed, then shown as pretty JSON.
    let details = client.find(Locator::Css("[data-testid=history-schema]")).await.unwrap();
    assert_eq!(details.attr("open").await.unwrap(), None, "collapsed by default");
    let summary = details.find(Locator::Css("summary")).await.unwrap();
    assert!(summary.text().await.unwrap().starts_with("Schema (version "), "{:?}", summary.text().await);
    summary.click().await.unwrap();
    let shown = wait()
        .for_element(Locator::Css("[data-testid=history-schema][open] pre"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(shown.contains("\"maximum\": 50") && shown.contains('\n'), "{shown:?}");

    // Another client writes: the panel says so on the node's change.
    let zk = zookeeper_client::Client::connect(&server).await.unwrap();
    zk.set_data(&path, br#"{"pool": 30}"#, None).await.unwrap();
    let note =
        wait().for_element(Locator::Css("[data-testid=history-note]")).await.unwrap().text().await.unwrap();
    assert_eq!(note, format!("version 2 of {path} was written outside ndsr; its value was not recorded"));
    screenshot(&client, &shots, "dashboard-history.png").await;
    client.close().await.unwrap();
}

/// A configuration node with a canary: the History panel shows the canary
/// (rule, base version, value) and what each reporting client runs, and
/// follows a promote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_node_shows_its_canary_and_what_each_client_runs() {
    use ndsr::release::{CanaryRule, PublishOptions};
    let server = ZkServer::shared().connect_string();
    let root = unique_path("dashboard-canary");
    let path = format!("{root}/web");
    let registry = ndsr::Registry::builder(&server).author("ops").build().await.unwrap();
    registry.publish(&path, br#"{"pool": 10}"#, PublishOptions::message("first pool")).await.unwrap();
    let reader = ndsr::Registry::builder(&server).identity("web-a").label("zone", "a").build().await.unwrap();
    let _config = reader.config::<serde_json::Value>(&path).build().await.unwrap();
    let rule = CanaryRule::Labels([("zone".to_string(), "a".to_string())].into());
    registry
        .start_canary(&path, br#"{"pool": 30}"#, rule, PublishOptions::message("zone a first"))
        .await
        .unwrap();
    let config = format!("roots = [\"{root}\"]\n");
    let agent = {
        let server = server.clone();
        tokio::task::spawn_blocking(move || Agent::start(&server, &config)).await.unwrap()
    };
    let driver = Driver::start();
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&shots).unwrap();
    let client = browser(&driver, &agent.dir.path().join("profile")).await;
    let wait = || client.wait().at_most(WAIT).every(Duration::from_millis(50));
    client.goto(&agent.url).await.unwrap();
    wait().for_element(Locator::Css("#session-state[data-state=connected]")).await.unwrap();
    client.execute("browse(arguments[0])", vec![serde_json::json!(path)]).await.unwrap();

    let panel = wait().for_element(Locator::Css("[data-testid=canary]")).await.unwrap();
    let text = panel.text().await.unwrap();
    for says in ["canary r0", "labels zone=a", "over v0", "ops@", "zone a first", "\"pool\": 30"] {
        assert!(text.contains(says), "no {says:?} in {text:?}");
    }
    let shown = text_with(
        &client,
        "[data-testid=canary]",
        "1 client: 0 on the stable value, 1 on the canary, 0 refused it",
    )
    .await;
    assert!(shown.contains("web-a ("), "{shown:?}");
    screenshot(&client, &shots, "dashboard-canary.png").await;

    registry.promote_canary(&path, PublishOptions::default()).await.unwrap();
    let shown = text_with(&client, "[data-testid=canary]", "No canary.").await;
    assert!(shown.contains("1 on the stable value"), "{shown:?}");
    client.close().await.unwrap();
}

/// An agent with a `[[mirror]]`: the Mirrors panel says where it copies
/// and that it has converged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_mirror_and_its_lag() {
    let (a, b) = (ZkServer::new().unwrap(), ZkServer::new().unwrap());
    let src = zookeeper_client::Client::connect(&a.connect_string()).await.unwrap();
    let options = zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    src.create("/dm", b"", &options).await.unwrap();
    src.create("/dm/x", b"1", &options).await.unwrap();
    let config = format!(
        "roots = [\"/dm\"]\n[[mirror]]\nname = \"dc2\"\nsource = \"{}:/dm\"\ndestination = \"{}:/dm\"\n",
        a.connect_string(),
        b.connect_string()
    );
    let agent = {
        let server = a.connect_string();
        tokio::task::spawn_blocking(move || Agent::start(&server, &config)).await.unwrap()
    };
    let driver = Driver::start();
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&shots).unwrap();
    let client = browser(&driver, &agent.dir.path().join("profile")).await;
    client.goto(&agent.url).await.unwrap();
    let shown = text_with(&client, "[data-testid=mirror][data-name=dc2]", "converged").await;
    assert!(shown.contains(&format!("{}:/dm → {}:/dm", a.connect_string(), b.connect_string())), "{shown:?}");
    assert!(shown.contains("2 nodes"), "{shown:?}");
    screenshot(&client, &shots, "dashboard-mirror.png").await;
    client.close().await.unwrap();
}
