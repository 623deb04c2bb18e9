//! `ndsr config canary|status|promote|abort` (issue 25, item 5) run as an
//! operator would, against a real ZooKeeper, with library clients of
//! different labels following the path.

mod common;

use common::*;
use ndsr::Registry;
use ndsr_testkit::{unique_path, ZkServer};
use serde_json::{json, Value};

fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    file
}

fn cli(server: &str, args: &[&str]) -> (i32, String, String) {
    let mut cmd = ndsr(server, args);
    cmd.env_remove("NDSR_CONFIG_ROOT").env_remove("NDSR_AUTHOR");
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn ok(server: &str, args: &[&str]) -> String {
    let (code, out, err) = cli(server, args);
    assert_eq!(code, 0, "{args:?}: {err}");
    out
}

fn status(server: &str, path: &str) -> Value {
    serde_json::from_str(&ok(server, &["config", "status", path, "--json"])).unwrap()
}

#[test]
fn an_operator_canaries_a_zone_watches_status_and_promotes() {
    let server = ZkServer::shared().connect_string();
    let rt = runtime();
    let path = format!("{}/web", unique_path("cli-canary"));
    ok(&server, &["config", "publish", &path, "--data", r#"{"pool": 1}"#, "-m", "stable"]);

    let client = |identity: &str, zone: &str| {
        rt.block_on(async {
            let registry =
                Registry::builder(&server).identity(identity).label("zone", zone).build().await.unwrap();
            let config = registry.config::<Value>(&path).build().await.unwrap();
            (registry, config)
        })
    };
    let (_a, in_a) = client("web-a", "a");
    let (_b, in_b) = client("web-b", "b");

    let new = file_with(br#"{"pool": 2}"#);
    let out = ok(
        &server,
        &[
            "config",
            "canary",
            &path,
            "--file",
            new.path().to_str().unwrap(),
            "--labels",
            "zone=a",
            "-m",
            "try",
        ],
    );
    assert!(out.starts_with(&format!("started: canary of {path} to labels zone=a over version 0")), "{out}");
    poll("zone a runs the canary", || in_a.get()["pool"] == json!(2));
    poll("both clients report", || status(&server, &path)["counts"]["clients"] == json!(2));
    let seen = status(&server, &path);
    assert_eq!(seen["counts"]["on_canary"], json!(1), "{seen}");
    assert_eq!(seen["counts"]["on_stable"], json!(1), "{seen}");
    assert_eq!(seen["canary"]["rule"], json!({"labels": {"zone": "a"}}));
    assert_eq!(in_b.get()["pool"], json!(1));
    let text = ok(&server, &["config", "status", &path]);
    assert!(
        text.contains("live version 0; 2 clients: 1 on the stable value, 1 on the canary, 0 refused it"),
        "{text}"
    );
    assert!(text.contains("  web-a [zone=a] pid "), "{text}");

    let out = ok(&server, &["config", "promote", &path]);
    assert!(out.starts_with(&format!("canary of {path} promoted: version 1")), "{out}");
    poll("zone b runs the promoted value", || in_b.get()["pool"] == json!(2));
    let history = ok(&server, &["config", "history", &path]);
    assert!(history.contains("promote"), "{history}");
    poll("both report stable version 1", || status(&server, &path)["counts"]["on_stable"] == json!(2));
    let (code, _, err) = cli(&server, &["config", "promote", &path]);
    assert_eq!(code, 10, "no canary left to promote: {err}");
}

#[test]
fn bad_canaries_exit_with_documented_codes_and_write_nothing() {
    let server = ZkServer::shared().connect_string();
    let path = format!("{}/web", unique_path("cli-canary-bad"));
    let new = file_with(br#"{"pool": 2}"#);
    let file = new.path().to_str().unwrap();

    let (code, _, err) = cli(&server, &["config", "canary", &path, "--file", file, "--hosts", "h1"]);
    assert_eq!(code, 3, "no release yet: {err}");
    assert!(err.contains("has no ndsr release yet"), "{err}");
    ok(&server, &["config", "publish", &path, "--data", r#"{"pool": 1}"#]);
    for bad in [&["--percent", "150"][..], &["--labels", "zone"], &["--hosts", "h1", "--percent", "5"]] {
        let mut args = vec!["config", "canary", &path, "--file", file];
        args.extend_from_slice(bad);
        let (code, _, err) = cli(&server, &args);
        assert!(code == 3 || code == 2, "{bad:?}: exit {code}: {err}");
    }
    let (code, _, err) = cli(&server, &["config", "canary", &path, "--file", file, "--percent", "150"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("0 to 100"), "{err}");
    let (code, _, err) = cli(&server, &["config", "canary", &path, "--file", file]);
    assert_eq!(code, 2, "a rule is required: {err}");
    assert_eq!(status(&server, &path)["canary"], Value::Null, "nothing was written");

    // A promote after the stable value changed: exit 13, both versions.
    ok(&server, &["config", "canary", &path, "--file", file, "--percent", "10"]);
    ok(&server, &["config", "publish", &path, "--data", r#"{"pool": 3}"#]);
    let (code, _, err) = cli(&server, &["config", "promote", &path]);
    assert_eq!(code, 13, "{err}");
    assert!(err.contains("at version 1, not 0 as when the canary began"), "{err}");
    let out = ok(&server, &["config", "abort", &path]);
    assert!(out.contains("aborted"), "{out}");
    let out = ok(&server, &["config", "abort", &path]);
    assert!(out.contains("has no canary"), "{out}");
}
