//! `ndsr config` (configuration releases, issue 24) run as a script
//! would, against a real ZooKeeper; what it wrote is read back with a
//! plain ZooKeeper client.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::*;
use ndsr_testkit::{unique_path, ZkServer};
use sha2::Digest;
use zookeeper_client::Client;

/// `ndsr --server SERVER ARGS...` with `stdin` fed in, without the
/// environment's config defaults: (exit code, stdout, stderr).
fn config(server: &str, args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
    let mut cmd = ndsr(server, args);
    cmd.env_remove("NDSR_CONFIG_ROOT").env_remove("NDSR_AUTHOR");
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(bytes).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Runs and expects exit 0; stdout.
fn ok(server: &str, args: &[&str]) -> String {
    let (code, out, err) = config(server, args, None);
    assert_eq!(code, 0, "{args:?}: {err}");
    out
}

fn history_dir(root: &str, path: &str) -> String {
    format!("{root}/config/{}/history", path.replace('%', "%25").replace('/', "%2F"))
}

fn entries(rt: &tokio::runtime::Runtime, zk: &Client, root: &str, path: &str) -> Vec<String> {
    let mut names = rt.block_on(zk.list_children(&history_dir(root, path))).unwrap_or_default();
    names.sort();
    names
}

fn bytes(rt: &tokio::runtime::Runtime, zk: &Client, path: &str) -> Vec<u8> {
    rt.block_on(zk.get_data(path)).unwrap().0
}

fn sha256(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    file
}

#[test]
fn publish_from_data_a_file_and_stdin_writes_the_exact_bytes_with_their_record() {
    let server = ZkServer::shared().connect_string();
    let rt = runtime();
    let zk = zk(&rt, &server);
    let path = format!("{}/web", unique_path("cli-config-publish"));
    let root = unique_path("cli-config-root");

    let first = "{ \"pool\": 10,  \"host\": \"db1\" }";
    let out =
        ok(&server, &["config", "--config-root", &root, "publish", &path, "--data", first, "-m", "first"]);
    let entry = &entries(&rt, &zk, &root, &path)[0];
    assert_eq!(
        out.trim_end(),
        format!("version 0 of {path} published: entry {entry}, sha256 {}", sha256(first.as_bytes()))
    );
    assert_eq!(bytes(&rt, &zk, &path), first.as_bytes());

    // A file's bytes, newline and all; JSON output.
    let second = b"{\n  \"host\": \"db1\",\n  \"pool\": 20\n}\n";
    let file = file_with(second);
    let out = ok(
        &server,
        &[
            "config",
            "publish",
            &path,
            "--file",
            file.path().to_str().unwrap(),
            "--config-root",
            &root,
            "--json",
        ],
    );
    let release: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(release["version"], 1);
    assert_eq!(release["previous_version"], 0);
    assert_eq!(release["sha256"], sha256(second).as_str());
    assert_eq!(bytes(&rt, &zk, &path), second);
    let made = entries(&rt, &zk, &root, &path);
    assert_eq!(made.len(), 2);
    assert_eq!(release["entry"], made[1].as_str());

    // Stdin, as `-`.
    let third = b"{\"pool\":30}";
    let (code, out, err) =
        config(&server, &["config", "--config-root", &root, "publish", &path, "-"], Some(third));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(&format!("version 2 of {path} published: entry r-")), "{out}");
    assert_eq!(bytes(&rt, &zk, &path), third);
    assert_eq!(entries(&rt, &zk, &root, &path).len(), 3);
    // The default root holds nothing of it.
    assert!(entries(&rt, &zk, "/ndsr", &path).is_empty());

    // Not JSON, or no value at all: refused, nothing written.
    let (code, out, err) = config(&server, &["config", "publish", &path, "--data", "{pool: 1}"], None);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("must be JSON"), "{err}");
    assert!(out.is_empty(), "{out}");
    let (code, _, err) = config(&server, &["config", "publish", &path], None);
    assert_eq!(code, 2, "{err}");
    assert_eq!(bytes(&rt, &zk, &path), third);
}

#[test]
fn a_value_the_schema_refuses_exits_12_listing_each_pointer_and_writes_nothing() {
    let server = ZkServer::shared().connect_string();
    let rt = runtime();
    let zk = zk(&rt, &server);
    let path = format!("{}/c", unique_path("cli-config-schema"));
    ok(&server, &["config", "publish", &path, "--data", r#"{"pool": 5}"#]);
    let schema = serde_json::json!({
        "type": "object",
        "properties": {"pool": {"type": "integer", "minimum": 1}, "host": {"type": "string"}},
        "required": ["pool"],
    });
    let schema_file = file_with(schema.to_string().as_bytes());
    let out = ok(&server, &["config", "schema", "set", &path, schema_file.path().to_str().unwrap()]);
    // The schema node was made, empty, with the first release: this is its first change.
    assert_eq!(out.trim_end(), format!("schema of {path} set (schema version 1)"));
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&server, &["config", "schema", "get", &path])).unwrap();
    assert_eq!(shown, schema);

    let (code, out, err) =
        config(&server, &["config", "publish", &path, "--data", r#"{"pool": 0, "host": 7}"#], None);
    assert_eq!(code, 12, "{err}");
    assert!(out.is_empty(), "{out}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines[0].contains(&format!("the value of {path} does not fit its schema (2 violations)")),
        "{err}"
    );
    let mut pointers: Vec<&str> =
        lines[1..].iter().map(|l| l.trim_start().split(':').next().unwrap()).collect();
    pointers.sort();
    assert_eq!(pointers, ["/host", "/pool"], "{err}");
    assert_eq!(bytes(&rt, &zk, &path), br#"{"pool": 5}"#);
    assert_eq!(entries(&rt, &zk, "/ndsr", &path).len(), 1, "nothing recorded either");

    // validate: 0 when it fits, 12 with each violation, 3 when not JSON.
    let good = file_with(br#"{"pool": 2}"#);
    let out = ok(&server, &["config", "validate", &path, good.path().to_str().unwrap()]);
    assert!(out.contains("fits the schema"), "{out}");
    let bad = file_with(br#"{"host": "h"}"#);
    let (code, _, err) = config(&server, &["config", "validate", &path, bad.path().to_str().unwrap()], None);
    assert_eq!(code, 12, "{err}");
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(err.lines().nth(1).unwrap().trim_start().starts_with("(the whole value): "), "{err}");
    assert!(err.contains("pool"), "{err}");
    let (code, _, err) = config(&server, &["config", "validate", &path, "-"], Some(br#"{"pool": -1}"#));
    assert_eq!(code, 12, "{err}");
    assert!(err.contains("  /pool: "), "{err}");
    let (code, _, err) = config(&server, &["config", "validate", &path, "-"], Some(b"nope"));
    assert_eq!(code, 3, "{err}");

    // A schema that is no schema is input error 3; one the live value
    // breaks is 12 unless forced.
    let broken = file_with(br#"{"type": "nope"}"#);
    let (code, _, err) =
        config(&server, &["config", "schema", "set", &path, broken.path().to_str().unwrap()], None);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("cannot be used"), "{err}");
    let stricter = file_with(br#"{"type": "object", "required": ["pool", "host"]}"#);
    let stricter = stricter.path().to_str().unwrap();
    let (code, _, err) = config(&server, &["config", "schema", "set", &path, stricter], None);
    assert_eq!(code, 12, "{err}");
    assert!(err.contains("the live value (version 0)") && err.contains("--force"), "{err}");
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&server, &["config", "schema", "get", &path])).unwrap();
    assert_eq!(shown, schema, "refused: unchanged");
    let (code, out, err) = config(&server, &["config", "schema", "set", &path, stricter, "--force"], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim_end(), format!("schema of {path} set (schema version 2)"));
    assert!(err.contains("does not fit it (1 violation)") && err.contains("host"), "{err}");

    // Removed: no schema, anything JSON goes.
    let out = ok(&server, &["config", "schema", "rm", &path]);
    assert_eq!(out.trim_end(), format!("schema of {path} removed (schema version 3)"));
    let (code, out, err) = config(&server, &["config", "schema", "get", &path], None);
    assert_eq!((code, out.as_str()), (10, ""), "{err}");
    assert!(err.contains("has no schema"), "{err}");
    ok(&server, &["config", "publish", &path, "--data", r#"{"pool": 0}"#]);
    assert_eq!(bytes(&rt, &zk, &path), br#"{"pool": 0}"#);
}

#[test]
fn if_version_that_does_not_match_exits_13_naming_the_version_found() {
    let server = ZkServer::shared().connect_string();
    let rt = runtime();
    let zk = zk(&rt, &server);
    let path = format!("{}/c", unique_path("cli-config-cas"));
    ok(&server, &["config", "publish", &path, "--data", "{\"n\":0}", "--if-version", "-1"]);

    let (code, out, err) =
        config(&server, &["config", "publish", &path, "--data", "{\"n\":1}", "--if-version", "5"], None);
    assert_eq!(code, 13, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains(&format!("{path} is at version 0, not at version 5")), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let (code, _, err) =
        config(&server, &["config", "publish", &path, "--data", "{\"n\":1}", "--if-version", "-1"], None);
    assert_eq!(code, 13, "{err}");
    assert_eq!(bytes(&rt, &zk, &path), b"{\"n\":0}");
    assert_eq!(entries(&rt, &zk, "/ndsr", &path).len(), 1);

    let out = ok(&server, &["config", "publish", &path, "--data", "{\"n\":1}", "--if-version", "0"]);
    assert!(out.starts_with(&format!("version 1 of {path} published")), "{out}");
    let (code, _, err) =
        config(&server, &["config", "rollback", &path, "--to", "0", "--if-version", "0"], None);
    assert_eq!(code, 13, "{err}");
    assert!(err.contains("at version 1"), "{err}");
    assert_eq!(bytes(&rt, &zk, &path), b"{\"n\":1}");
}

#[test]
fn history_says_who_wrote_what_and_the_gaps_left_by_other_clients() {
    let server = ZkServer::shared().connect_string();
    let rt = runtime();
    let zk = zk(&rt, &server);
    let path = format!("{}/c", unique_path("cli-config-history"));
    let (code, _, err) = config(&server, &["config", "history", &path], None);
    assert_eq!(code, 10, "{err}");
    assert!(err.contains("no history"), "{err}");

    ok(
        &server,
        &[
            "config",
            "--author",
            "alice",
            "publish",
            &path,
            "--data",
            r#"{"pool":10,"host":"a"}"#,
            "-m",
            "first",
        ],
    );
    ok(
        &server,
        &["config", "publish", &path, "--author", "bob", "--data", r#"{"pool":20,"host":"a"}"#, "-m", "more"],
    );
    rt.block_on(zk.set_data(&path, br#"{"pool":99}"#, None)).unwrap();

    let out = ok(&server, &["config", "history", &path]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("version 0: publish by alice@"), "{out}");
    assert!(lines[0].ends_with(": first"), "{out}");
    assert!(lines[1].starts_with("version 1: publish by bob@") && lines[1].ends_with(": more"), "{out}");
    assert_eq!(lines[2], format!("version 2 of {path} was written outside ndsr; its value was not recorded"));

    let out = ok(&server, &["config", "history", &path, "--diff"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].starts_with("version 0: "), "{out}");
    assert!(lines[1].starts_with("version 1: "), "{out}");
    assert_eq!(lines[2], "    ~ /pool: 10 -> 20");
    assert!(lines[3].contains("written outside ndsr"), "{out}");

    // Published again through ndsr: the live release is marked.
    ok(&server, &["config", "publish", &path, "--data", r#"{"pool":30,"host":"a"}"#]);
    let out = ok(&server, &["config", "history", &path, "--json", "--diff"]);
    let history: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(history["path"], path.as_str());
    assert_eq!(history["live_version"], 3);
    let items = history["items"].as_array().unwrap();
    let kinds: Vec<&str> = items.iter().map(|i| i["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["release", "release", "gap", "release"]);
    assert_eq!(items[0]["author"], "alice");
    assert_eq!((items[2]["from"].as_i64(), items[2]["to"].as_i64()), (Some(2), Some(2)));
    assert_eq!(items[2]["reason"], "external");
    assert!(items[2]["line"].as_str().unwrap().contains("written outside ndsr"));
    assert_eq!(items[3]["live"], true);
    assert_eq!(items[3]["changes"][0]["pointer"], "/pool");
    assert_eq!(items[3]["changes"][0]["old"], 20);
    assert!(items[0].get("changes").is_none(), "the first release has none before it");
}

#[test]
fn rollback_restores_the_exact_bytes_and_refuses_a_version_not_in_history() {
    let server = ZkServer::shared().connect_string();
    let rt = runtime();
    let zk = zk(&rt, &server);
    let path = format!("{}/c", unique_path("cli-config-rollback"));
    let original = b"{\"b\":1,   \"a\":[1,2]}\n";
    let file = file_with(original);
    ok(&server, &["config", "publish", &path, file.path().to_str().unwrap(), "-m", "good"]);
    ok(&server, &["config", "publish", &path, "--data", r#"{"b":2}"#, "-m", "bad"]);

    let out = ok(&server, &["config", "rollback", &path, "--to", "0", "-m", "undo", "--author", "carol"]);
    assert!(
        out.starts_with(&format!("version 2 of {path} rolled back to the value of version 0: entry r-")),
        "{out}"
    );
    assert!(out.trim_end().ends_with(&sha256(original)), "{out}");
    assert_eq!(bytes(&rt, &zk, &path), original);
    let out = ok(&server, &["config", "history", &path]);
    let last = out.lines().last().unwrap();
    assert!(
        last.starts_with("version 2 (live): rollback to version 0 by carol@") && last.ends_with(": undo"),
        "{out}"
    );

    let (code, out, err) = config(&server, &["config", "rollback", &path, "--to", "9"], None);
    assert_eq!(code, 3, "{err}");
    assert!(out.is_empty());
    assert!(err.contains("version 9 of") && err.contains("it holds versions 0, 1, 2"), "{err}");
    assert_eq!(bytes(&rt, &zk, &path), original);
}

#[test]
fn diff_prints_each_change_and_exits_0_with_or_without_changes() {
    let server = ZkServer::shared().connect_string();
    let path = format!("{}/c", unique_path("cli-config-diff"));
    ok(&server, &["config", "publish", &path, "--data", r#"{"pool":10,"host":"a","gone":1}"#]);
    let (code, _, err) = config(&server, &["config", "diff", &path], None);
    assert_eq!(code, 3, "nothing before the live value: {err}");
    assert!(err.contains("no release before its live value"), "{err}");

    ok(&server, &["config", "publish", &path, "--data", r#"{"pool":20,"host":"a","new":true}"#]);
    let expected = "~ /pool: 10 -> 20\n- /gone: 1\n+ /new: true\n";
    assert_eq!(ok(&server, &["config", "diff", &path]), expected, "the release before live, against live");
    assert_eq!(ok(&server, &["config", "diff", &path, "0"]), expected, "0 against live");
    assert_eq!(ok(&server, &["config", "diff", &path, "0", "1"]), expected);
    assert_eq!(
        ok(&server, &["config", "diff", &path, "1", "0"]),
        "~ /pool: 20 -> 10\n- /new: true\n+ /gone: 1\n"
    );
    let (code, out, err) = config(&server, &["config", "diff", &path, "1"], None);
    assert_eq!((code, out.as_str()), (0, ""), "no change is exit 0 too");
    assert!(err.contains("no change"), "{err}");
    let changes: serde_json::Value =
        serde_json::from_str(&ok(&server, &["config", "diff", &path, "--format", "json"])).unwrap();
    assert_eq!(changes[0], serde_json::json!({"pointer": "/pool", "kind": "changed", "old": 10, "new": 20}));

    let (code, _, err) = config(&server, &["config", "diff", &path, "0", "7"], None);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("it holds versions 0, 1"), "{err}");
}
