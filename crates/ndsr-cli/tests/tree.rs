//! Configuration as code (issue 25): `ndsr export`, `ndsr diff` and
//! `ndsr apply` against a real ZooKeeper; what they wrote is read back
//! with a plain ZooKeeper client.

mod common;

use std::process::Stdio;

use common::*;
use ndsr_testkit::{unique_path, ZkServer};
use zookeeper_client::{Acl, Acls, AuthId, Client, CreateMode, Permission};

/// `ndsr --server SERVER ARGS...` without the environment's config
/// defaults: (exit code, stdout, stderr).
fn tree(server: &str, args: &[&str]) -> (i32, String, String) {
    let mut cmd = ndsr(server, args);
    cmd.env_remove("NDSR_CONFIG_ROOT").env_remove("NDSR_AUTHOR");
    cmd.stdin(Stdio::null());
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn ok(server: &str, args: &[&str]) -> String {
    let (code, out, err) = tree(server, args);
    assert_eq!(code, 0, "{args:?}: {out}{err}");
    out
}

fn file_with(text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

fn persistent() -> zookeeper_client::CreateOptions<'static> {
    CreateMode::Persistent.with_acls(Acls::anyone_all())
}

fn put(rt: &tokio::runtime::Runtime, zk: &Client, path: &str, bytes: &[u8]) {
    rt.block_on(zk.create(path, bytes, &persistent())).unwrap();
}

fn ephemeral(rt: &tokio::runtime::Runtime, zk: &Client, path: &str) {
    rt.block_on(zk.create(path, b"{\"host\":\"h\"}", &CreateMode::Ephemeral.with_acls(Acls::anyone_all())))
        .unwrap();
}

fn data(rt: &tokio::runtime::Runtime, zk: &Client, path: &str) -> Option<Vec<u8>> {
    match rt.block_on(zk.get_data(path)) {
        Ok((bytes, _)) => Some(bytes),
        Err(zookeeper_client::Error::NoNode) => None,
        Err(e) => panic!("{path}: {e}"),
    }
}

fn path_str(file: &tempfile::NamedTempFile) -> &str {
    file.path().to_str().unwrap()
}

#[test]
fn export_then_apply_to_a_fresh_server_then_export_gives_the_same_document() {
    let rt = runtime();
    let source = ZkServer::shared().connect_string();
    let zk = zk(&rt, &source);
    let root = unique_path("cli-tree-export");
    rt.block_on(zk.mkdir(&root, &persistent())).unwrap();
    put(&rt, &zk, &format!("{root}/config"), b"");
    put(&rt, &zk, &format!("{root}/config/web"), b"{\"pool\":20,\"hosts\":[\"a\",\"b\"]}");
    put(&rt, &zk, &format!("{root}/notes"), b"hello\n");
    put(&rt, &zk, &format!("{root}/spaced"), b"{ \"pool\": 1 }");
    put(&rt, &zk, &format!("{root}/blob"), &[0, 1, 2, 255]);
    put(&rt, &zk, &format!("{root}/services"), b"");
    // JSON that YAML cannot hold exactly, and JSON with a key twice.
    put(&rt, &zk, &format!("{root}/zbig"), b"{\"n\":12345678901234567890123,\"f\":1.0}");
    put(&rt, &zk, &format!("{root}/zdup"), b"{\"a\":1,\"a\":2}");
    ephemeral(&rt, &zk, &format!("{root}/services/i1"));

    let exported = ok(&source, &["export", &root]);
    let expected = format!(
        "format: ndsr-tree\nversion: 1\nroot: {root}\nnodes:\n  '': {{}}\n  blob:\n    base64: AAEC/w==\n  config: {{}}\n  config/web:\n    json:\n      pool: 20\n      hosts:\n      - a\n      - b\n  notes:\n    text: |\n      hello\n  services: {{}}\n  spaced:\n    text: '{{ \"pool\": 1 }}'\n  zbig:\n    text: '{{\"n\":12345678901234567890123,\"f\":1.0}}'\n  zdup:\n    text: '{{\"a\":1,\"a\":2}}'\n"
    );
    assert_eq!(exported, expected);
    let with_ephemeral = ok(&source, &["export", &root, "--ephemeral"]);
    assert!(with_ephemeral.contains("services/i1:\n    json:\n      host: h\n"), "{with_ephemeral}");

    let fresh = ZkServer::new().unwrap();
    let dest = fresh.connect_string();
    for format in ["yaml", "json"] {
        let file = tempfile::NamedTempFile::new().unwrap();
        ok(&source, &["export", &root, "--format", format, "-o", path_str(&file)]);
        let applied = ok(&dest, &["apply", path_str(&file), "-m", "from git"]);
        if format == "yaml" {
            assert!(applied.contains(&format!("created {root}/blob (version 0)")), "{applied}");
            assert!(applied.ends_with("9 created, 0 updated, 0 deleted, 0 already done\n"), "{applied}");
        } else {
            // The same tree again: nothing to do.
            assert_eq!(
                applied,
                format!("applied to {root}: 0 created, 0 updated, 0 deleted, 0 already done\n")
            );
        }
        let again = tempfile::NamedTempFile::new().unwrap();
        ok(&dest, &["export", &root, "--format", format, "-o", path_str(&again)]);
        assert_eq!(std::fs::read(again.path()).unwrap(), std::fs::read(file.path()).unwrap(), "{format}");
    }
    let fresh_zk = common::zk(&rt, &dest);
    assert_eq!(data(&rt, &fresh_zk, &format!("{root}/blob")).unwrap(), [0, 1, 2, 255]);
    assert_eq!(data(&rt, &fresh_zk, &format!("{root}/spaced")).unwrap(), b"{ \"pool\": 1 }");
    assert_eq!(data(&rt, &fresh_zk, &format!("{root}/services/i1")), None);
    assert_eq!(
        data(&rt, &fresh_zk, &format!("{root}/zbig")).unwrap(),
        b"{\"n\":12345678901234567890123,\"f\":1.0}"
    );
    assert_eq!(data(&rt, &fresh_zk, &format!("{root}/zdup")).unwrap(), b"{\"a\":1,\"a\":2}");
    // The configuration root (where apply kept the histories) and
    // /zookeeper are never exported.
    let everything = ok(&dest, &["export", "/"]);
    assert!(everything.contains("\n  ndsr-test: {}\n"), "{everything}");
    assert!(!everything.contains("\n  ndsr:") && !everything.contains("\n  ndsr/"), "{everything}");
    assert!(!everything.contains("zookeeper"), "{everything}");
    // Applied as releases: the history holds it, with the message.
    let history = ok(&dest, &["config", "history", &format!("{root}/config/web")]);
    assert!(history.contains("from git"), "{history}");
}

#[test]
fn diff_exits_0_when_nothing_to_do_and_14_with_the_plan_lines() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let zk = zk(&rt, &server);
    let root = unique_path("cli-tree-diff");
    rt.block_on(zk.mkdir(&root, &persistent())).unwrap();
    put(&rt, &zk, &format!("{root}/web"), b"{\"pool\":20,\"host\":\"db1\"}");
    put(&rt, &zk, &format!("{root}/old"), b"x");

    let same = file_with(&format!(
        "format: ndsr-tree\nversion: 1\nroot: {root}\nnodes:\n  '': {{}}\n  web: {{json: {{pool: 20, host: db1}}}}\n  old: {{text: x}}\n"
    ));
    let (code, out, _) = tree(&server, &["diff", path_str(&same), "--prune"]);
    assert_eq!((code, out), (0, format!("no changes: {root} matches {}\n", path_str(&same))));

    let changed = file_with(&format!(
        "format: ndsr-tree\nversion: 1\nroot: {root}\nnodes:\n  web: {{json: {{pool: 30, host: db1}}}}\n  new/leaf: {{text: hi}}\n"
    ));
    let (code, out, _) = tree(&server, &["diff", path_str(&changed)]);
    assert_eq!(code, 14, "{out}");
    assert_eq!(
        out,
        format!(
            "+ {root}/new/leaf\n~ {root}/web (version 0)\n    ~ /pool: 20 -> 30\nplan: 1 to create, 1 to update, 0 to delete\n"
        )
    );
    let (code, out, _) = tree(&server, &["diff", path_str(&changed), "--prune"]);
    assert_eq!(code, 14);
    assert!(out.contains(&format!("- {root}/old\nplan: 1 to create, 1 to update, 1 to delete")), "{out}");
    // A diff writes nothing.
    assert_eq!(data(&rt, &zk, &format!("{root}/web")).unwrap(), b"{\"pool\":20,\"host\":\"db1\"}");
    assert_eq!(data(&rt, &zk, &format!("{root}/new")), None);
}

#[test]
fn a_node_changed_since_the_plan_fails_its_whole_batch_and_a_rerun_converges() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let zk = zk(&rt, &server);
    let root = unique_path("cli-tree-conflict");
    rt.block_on(zk.mkdir(&root, &persistent())).unwrap();
    for name in ["a", "b", "c"] {
        put(&rt, &zk, &format!("{root}/{name}"), b"{\"v\":1}");
    }
    let file = file_with(&format!(
        "format: ndsr-tree\nversion: 1\nroot: {root}\nnodes:\n  a: {{json: {{v: 2}}}}\n  b: {{json: {{v: 2}}}}\n  c: {{json: {{v: 2}}}}\n"
    ));
    let plan = tempfile::NamedTempFile::new().unwrap();
    let (code, _, _) = tree(&server, &["diff", path_str(&file), "--plan-out", path_str(&plan)]);
    assert_eq!(code, 14);
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(plan.path()).unwrap()).unwrap();
    assert_eq!(saved["format"], "ndsr-plan");
    assert_eq!(saved["root"], root.as_str());
    assert_eq!(
        saved["steps"][1],
        serde_json::json!({"op": "update", "path": "b", "expected_version": 0, "json": {"v": 2}})
    );

    // Someone changes b after the review.
    rt.block_on(zk.set_data(&format!("{root}/b"), b"{\"v\":9}", None)).unwrap();
    let (code, out, err) = tree(&server, &["apply", "--plan", path_str(&plan)]);
    assert_eq!(code, 13, "{out}{err}");
    assert!(
        err.contains(&format!("{root}/b changed since the plan: planned at version 0, it is at version 1")),
        "{err}"
    );
    assert!(err.contains("nothing of its batch of 3 steps was written"), "{err}");
    // The batch is all or nothing: a, before b, is not written either.
    assert_eq!(data(&rt, &zk, &format!("{root}/a")).unwrap(), b"{\"v\":1}");
    assert_eq!(data(&rt, &zk, &format!("{root}/b")).unwrap(), b"{\"v\":9}");
    assert_eq!(data(&rt, &zk, &format!("{root}/c")).unwrap(), b"{\"v\":1}");

    // Re-planned from the file, the apply does the job.
    let out = ok(&server, &["apply", path_str(&file)]);
    assert_eq!(
        out,
        format!(
            "updated {root}/a (version 1)\nupdated {root}/b (version 2)\nupdated {root}/c (version 1)\napplied to {root}: 0 created, 3 updated, 0 deleted, 0 already done\n"
        )
    );
    assert_eq!(tree(&server, &["diff", path_str(&file)]).0, 0);
    // A saved plan whose steps are done is skipped step by step.
    let out = ok(&server, &["apply", "--plan", path_str(&plan), path_str(&file)]);
    assert!(out.ends_with("0 created, 0 updated, 0 deleted, 3 already done\n"), "{out}");
}

#[test]
fn prune_deletes_deepest_first_and_never_an_ephemeral_or_its_parent() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let zk = zk(&rt, &server);
    let root = unique_path("cli-tree-prune");
    rt.block_on(zk.mkdir(&root, &persistent())).unwrap();
    put(&rt, &zk, &format!("{root}/keep"), b"k");
    put(&rt, &zk, &format!("{root}/x"), b"");
    put(&rt, &zk, &format!("{root}/x/y"), b"1");
    put(&rt, &zk, &format!("{root}/svc"), b"");
    ephemeral(&rt, &zk, &format!("{root}/svc/i1"));
    ephemeral(&rt, &zk, &format!("{root}/lonely"));
    let file =
        file_with(&format!("format: ndsr-tree\nversion: 1\nroot: {root}\nnodes:\n  keep: {{text: k}}\n"));
    let (code, out, _) = tree(&server, &["diff", path_str(&file), "--prune"]);
    assert_eq!(code, 14);
    assert_eq!(out, format!("- {root}/x/y\n- {root}/x\nplan: 0 to create, 0 to update, 2 to delete\n"));
    let out = ok(&server, &["apply", path_str(&file), "--prune"]);
    assert_eq!(
        out,
        format!("deleted {root}/x/y\ndeleted {root}/x\napplied to {root}: 0 created, 0 updated, 2 deleted, 0 already done\n")
    );
    assert_eq!(data(&rt, &zk, &format!("{root}/x")), None);
    assert!(data(&rt, &zk, &format!("{root}/svc")).is_some());
    assert!(data(&rt, &zk, &format!("{root}/svc/i1")).is_some());
    assert!(data(&rt, &zk, &format!("{root}/lonely")).is_some());
    assert_eq!(tree(&server, &["diff", path_str(&file), "--prune"]).0, 0);
}

#[test]
fn a_value_failing_its_schema_refuses_the_whole_apply() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let zk = zk(&rt, &server);
    let root = unique_path("cli-tree-schema");
    let schema = file_with(r#"{"type":"object","properties":{"pool":{"type":"integer"}}}"#);
    ok(&server, &["config", "schema", "set", &format!("{root}/web"), path_str(&schema)]);
    let file = file_with(&format!(
        "format: ndsr-tree\nversion: 1\nroot: {root}\nnodes:\n  a: {{text: fine}}\n  web: {{json: {{pool: many}}}}\n"
    ));
    let (code, out, err) = tree(&server, &["apply", path_str(&file)]);
    assert_eq!(code, 12, "{out}{err}");
    assert!(err.contains("1 value do not fit their schemas; nothing was written"), "{err}");
    assert!(err.contains(&format!("{root}/web:\n    /pool:")), "{err}");
    assert_eq!(data(&rt, &zk, &format!("{root}/a")), None);
}

#[test]
fn bad_files_are_refused_with_what_is_wrong_before_connecting() {
    // Nothing listens here: every refusal comes before a connection.
    let server = "127.0.0.1:1";
    let cases: Vec<(String, &str)> = vec![
        (
            "format: ndsr-tree\nversion: 1\nroot: /app\nnodes:\n  a: {text: [unclosed\n".into(),
            "line 5 column",
        ),
        (
            "{\"format\": \"ndsr-tree\",\n \"version\": 1,\n \"root\": /app}".into(),
            "not valid JSON: expected value at line 3 column 10",
        ),
        (
            "format: ndsr-tree\nversion: 1\nroot: /app\nnodes:\n  a: {text: x}\n  a: {text: y}\n".into(),
            "two entries for the node \"a\"",
        ),
        (
            "format: ndsr-tree\nversion: 1\nroot: /app\nnodes:\n  ../etc: {text: x}\n".into(),
            "node \"../etc\" is not a plain relative path",
        ),
        (
            "format: ndsr-tree\nversion: 1\nroot: /app\nnodes:\n  /etc: {text: x}\n".into(),
            "node \"/etc\" is absolute",
        ),
        (
            "format: ndsr-tree\nversion: 1\nroot: /app\nnodes:\n  a: {text: x, base64: eA==}\n".into(),
            "give one of json, text or base64",
        ),
        ("format: ndsr-plan\nversion: 1\nroot: /app\nnodes: {}\n".into(), "is not a tree file"),
    ];
    for (text, message) in cases {
        let file = file_with(&text);
        for command in ["diff", "apply"] {
            let (code, out, err) = tree(server, &[command, path_str(&file)]);
            assert_eq!(code, 3, "{command} {text}: {out}{err}");
            assert!(err.contains(message), "{command} {text}: {err}");
        }
    }
    let tree_file = file_with("format: ndsr-tree\nversion: 1\nroot: /app\nnodes:\n  a: {text: x}\n");
    let other = file_with(
        r#"{"format":"ndsr-plan","version":1,"root":"/other","steps":[{"op":"create","path":"a","expected_version":-1,"text":"x"}]}"#,
    );
    let (code, _, err) = tree(server, &["apply", path_str(&tree_file), "--plan", path_str(&other)]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("is a plan for /other, but"), "{err}");
    let not_a_plan = file_with(r#"{"format":"ndsr-tree","version":1,"root":"/app","steps":[]}"#);
    let (code, _, err) = tree(server, &["apply", "--plan", path_str(&not_a_plan)]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("is not a plan"), "{err}");
}

fn create_with(rt: &tokio::runtime::Runtime, zk: &Client, path: &str, bytes: &[u8], acl: &[Acl]) {
    rt.block_on(zk.create(path, bytes, &CreateMode::Persistent.with_acls(Acls::new(acl)))).unwrap();
}

fn acl_of(rt: &tokio::runtime::Runtime, zk: &Client, path: &str) -> (Vec<Acl>, i32) {
    let (acl, stat) = rt.block_on(zk.get_acl(path)).unwrap();
    (acl, stat.aversion)
}

/// The digest id of owner:secret.
fn owner() -> String {
    ndsr::acl::Credentials::new("owner", "secret").digest_id()
}

#[test]
fn export_with_acls_then_apply_to_a_fresh_server_gives_the_same_acls() {
    let rt = runtime();
    let source = ZkServer::shared().connect_string();
    let zk = zk(&rt, &source);
    let root = unique_path("cli-tree-acl-export");
    rt.block_on(zk.mkdir(&root, &persistent())).unwrap();
    let read = Acl::new(Permission::READ, AuthId::anyone());
    let digest = [Acl::new(Permission::ALL, AuthId::new("digest", &owner())), read.clone()];
    create_with(&rt, &zk, &format!("{root}/secret"), b"{\"key\":1}", &digest);
    let local =
        [Acl::new(Permission::READ | Permission::WRITE, AuthId::new("ip", "127.0.0.1")), read.clone()];
    create_with(&rt, &zk, &format!("{root}/local"), b"", &local);
    // A parent that lets no one create under it but its owner: the apply
    // creates its child before it sets that ACL.
    put(&rt, &zk, &format!("{root}/locked"), b"");
    put(&rt, &zk, &format!("{root}/locked/child"), b"c");
    rt.block_on(zk.set_acl(&format!("{root}/locked"), &digest, None)).unwrap();

    // Without --acls, no ACL.
    assert!(!ok(&source, &["export", &root]).contains("acl:"));
    // ZooKeeper hides a digest's hash from a client without ADMIN (owner:x).
    let (code, out, err) = tree(&source, &["export", &root, "--acls"]);
    assert_eq!(code, 5, "{out}{err}");
    assert!(err.contains(&format!("{root}/locked: ZooKeeper hides the digest hashes of its ACL from a client without ADMIN on it (it shows owner:x)")), "{err}");
    let as_owner = ["-u", "owner", "-p", "secret", "export", &root, "--acls"];
    let exported = ok(&source, &as_owner);
    let anyone_all = "    - perms: rwcda\n      scheme: world\n      id: anyone\n";
    let owned = format!(
        "    - perms: rwcda\n      scheme: digest\n      id: {}\n    - perms: r\n      scheme: world\n      id: anyone\n",
        owner()
    );
    let expected = format!(
        "format: ndsr-tree\nversion: 1\nroot: {root}\nnodes:\n  '':\n    acl:\n{anyone_all}  local:\n    acl:\n    - perms: rw\n      scheme: ip\n      id: 127.0.0.1\n    - perms: r\n      scheme: world\n      id: anyone\n  locked:\n    acl:\n{owned}  locked/child:\n    text: c\n    acl:\n{anyone_all}  secret:\n    json:\n      key: 1\n    acl:\n{owned}"
    );
    assert_eq!(exported, expected);

    let fresh = ZkServer::new().unwrap();
    let dest = fresh.connect_string();
    for format in ["yaml", "json"] {
        let file = tempfile::NamedTempFile::new().unwrap();
        ok(&source, &[&as_owner[..], &["--format", format, "-o", path_str(&file)]].concat());
        // Applied without credentials: the ACLs give the applier ADMIN
        // nowhere but on local and locked/child.
        let applied = ok(&dest, &["apply", path_str(&file)]);
        if format == "yaml" {
            // The locked parent's ACL is set after its child was created;
            // the others are created with theirs.
            assert!(
                applied.contains(&format!("set the ACL of {root}/locked (acl version 1)\n")),
                "{applied}"
            );
            assert!(
                applied.ends_with("5 created, 0 updated, 0 deleted, 1 ACL set, 0 already done\n"),
                "{applied}"
            );
        } else {
            assert_eq!(
                applied,
                format!("applied to {root}: 0 created, 0 updated, 0 deleted, 0 already done\n")
            );
        }
        let again = tempfile::NamedTempFile::new().unwrap();
        ok(&dest, &[&as_owner[..], &["--format", format, "-o", path_str(&again)]].concat());
        assert_eq!(std::fs::read(again.path()).unwrap(), std::fs::read(file.path()).unwrap(), "{format}");
        assert_eq!(tree(&dest, &["diff", path_str(&file)]).0, 0);
    }
    let dest_zk = common::zk(&rt, &dest);
    rt.block_on(dest_zk.auth("digest", b"owner:secret")).unwrap();
    // Created with its ACL (in the batch's transaction): ACL version 0.
    assert_eq!(acl_of(&rt, &dest_zk, &format!("{root}/secret")), (digest.to_vec(), 0));
    assert_eq!(acl_of(&rt, &dest_zk, &format!("{root}/local")), (local.to_vec(), 0));
    assert_eq!(acl_of(&rt, &dest_zk, &format!("{root}/locked")), (digest.to_vec(), 1));
    assert_eq!(data(&rt, &dest_zk, &format!("{root}/locked/child")).unwrap(), b"c");
}

#[test]
fn diff_shows_an_acl_change_and_apply_sets_it_conditional_on_the_acl_version() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let zk = zk(&rt, &server);
    let root = unique_path("cli-tree-acl-diff");
    rt.block_on(zk.mkdir(&root, &persistent())).unwrap();
    put(&rt, &zk, &format!("{root}/web"), b"{\"pool\":20}");
    // Not in the file with an acl: its ACL is not compared.
    let read_only = [Acl::new(Permission::READ | Permission::ADMIN, AuthId::anyone())];
    create_with(&rt, &zk, &format!("{root}/other"), b"o", &read_only);
    let file = file_with(&format!(
        "format: ndsr-tree\nversion: 1\nroot: {root}\nnodes:\n  web:\n    json: {{pool: 20}}\n    acl: [{{perms: ra, scheme: world, id: anyone}}, {{perms: rwcda, scheme: digest, id: '{}'}}]\n  other: {{text: o}}\n",
        owner()
    ));
    let plan = tempfile::NamedTempFile::new().unwrap();
    let (code, out, err) = tree(&server, &["diff", path_str(&file), "--plan-out", path_str(&plan)]);
    assert_eq!(code, 14, "{out}{err}");
    assert_eq!(
        out,
        format!(
            "~ {root}/web (acl, acl version 0)\n    old: world:anyone rwcda\n    new: world:anyone ra, digest:{} rwcda\nplan: 0 to create, 0 to update, 0 to delete, 1 ACL to set\n",
            owner()
        )
    );
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(plan.path()).unwrap()).unwrap();
    assert_eq!(
        saved["steps"][0],
        serde_json::json!({"op": "acl", "path": "web", "expected_aversion": 0, "acl": [
            {"perms": "ra", "scheme": "world", "id": "anyone"},
            {"perms": "rwcda", "scheme": "digest", "id": owner()},
        ]})
    );

    // Someone changes web's ACL after the review: the saved plan stops.
    rt.block_on(zk.set_acl(&format!("{root}/web"), &[Acl::new(Permission::ALL, AuthId::anyone())], Some(0)))
        .unwrap();
    let (code, out, err) = tree(&server, &["apply", "--plan", path_str(&plan), path_str(&file)]);
    assert_eq!(code, 13, "{out}{err}");
    assert!(
        err.contains(&format!(
            "{root}/web's ACL changed since the plan: planned at acl version 0, it is at acl version 1"
        )),
        "{err}"
    );
    assert_eq!(acl_of(&rt, &zk, &format!("{root}/web")).1, 1);

    // Planned again with a value change too: the value, then the ACL.
    let both = file_with(&format!(
        "format: ndsr-tree\nversion: 1\nroot: {root}\nnodes:\n  web:\n    json: {{pool: 30}}\n    acl: [{{perms: ra, scheme: world, id: anyone}}, {{perms: rwcda, scheme: digest, id: '{}'}}]\n",
        owner()
    ));
    let out = ok(&server, &["apply", path_str(&both)]);
    assert_eq!(
        out,
        format!(
            "updated {root}/web (version 1)\nset the ACL of {root}/web (acl version 2)\napplied to {root}: 0 created, 1 updated, 0 deleted, 1 ACL set, 0 already done\n"
        )
    );
    let (acl, aversion) = acl_of(&rt, &zk, &format!("{root}/web"));
    assert_eq!(aversion, 2);
    assert_eq!(
        acl,
        [
            Acl::new(Permission::READ | Permission::ADMIN, AuthId::anyone()),
            Acl::new(Permission::ALL, AuthId::new("digest", &owner())),
        ]
    );
    assert_eq!(data(&rt, &zk, &format!("{root}/web")).unwrap(), b"{\"pool\":30}");
    assert_eq!(acl_of(&rt, &zk, &format!("{root}/other")), (read_only.to_vec(), 0));
    assert_eq!(tree(&server, &["diff", path_str(&both)]).0, 0);
}

#[test]
fn bad_acl_entries_are_refused_naming_the_node_and_the_line() {
    // Nothing listens here: every refusal comes before a connection.
    let server = "127.0.0.1:1";
    let head = "format: ndsr-tree\nversion: 1\nroot: /app\nnodes:\n  a: {text: x}\n";
    let cases = [
        ("  b:\n    acl: [{perms: rwx, scheme: world, id: anyone}]\n", "nodes.b: acl entry 1: perms \"rwx\": 'x' is not one of r w c d a at line 7"),
        ("  b:\n    text: y\n    acl:\n    - {perms: r, scheme: world, id: anyone}\n    - {perms: r, scheme: ip}\n", "nodes.b.acl[1]: missing field `id` at line 10"),
        ("  b: {acl: []}\n", "nodes.b: acl: an ACL needs at least one entry at line 6"),
        ("  b: {acl: [{perms: r, scheme: world, id: someone}]}\n", "the world scheme's only id is anyone"),
        ("  b: {acl: [{perms: r, scheme: digest, id: bob}]}\n", "a digest id is user:base64(sha1(user:password))"),
        ("  b: {acl: [{perms: rwcda, scheme: auth, id: bob}]}\n", "the auth scheme is stored as the creator's ids"),
    ];
    for (text, message) in cases {
        let file = file_with(&format!("{head}{text}"));
        for command in ["diff", "apply"] {
            let (code, out, err) = tree(server, &[command, path_str(&file)]);
            assert_eq!(code, 3, "{command} {text}: {out}{err}");
            assert!(err.contains(message), "{command} {text}: {err}");
        }
    }
    let json = file_with(
        "{\"format\": \"ndsr-tree\", \"version\": 1, \"root\": \"/app\", \"nodes\": {\n  \"b\": {\"acl\": [{\"perms\": \"r\", \"id\": \"anyone\"}]}}}",
    );
    let (code, _, err) = tree(server, &["diff", path_str(&json)]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("node \"b\": missing field `scheme` at line 2"), "{err}");
}

/// A directory of tree files is one tree (rooted at their roots' common
/// ancestor); `apply --dry-run` prints the plan as `diff` does and writes
/// nothing; a node in two files is refused, naming both.
#[test]
fn a_directory_of_files_plans_and_applies_as_one_tree_and_dry_run_writes_nothing() {
    let server = ZkServer::shared().connect_string();
    let rt = runtime();
    let zk = zk(&rt, &server);
    let root = unique_path("tree-dir");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("apps")).unwrap();
    std::fs::write(
        dir.path().join("web.yaml"),
        format!(
            "format: ndsr-tree\nversion: 1\nroot: {root}/web\nnodes:\n  '': {{}}\n  pool: {{json: 10}}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("apps/db.json"),
        format!("{{\"format\": \"ndsr-tree\", \"version\": 1, \"root\": \"{root}/db\", \"nodes\": {{\"\": {{}}, \"replicas\": {{\"json\": 3}}}}}}"),
    )
    .unwrap();
    std::fs::write(dir.path().join("README.md"), "not a tree").unwrap();
    let d = dir.path().to_str().unwrap();

    let (code, out, err) = tree(&server, &["apply", d, "--dry-run"]);
    assert_eq!(code, 14, "{out}{err}");
    assert!(
        out.contains(&format!("+ {root}/web/pool")) && out.contains(&format!("+ {root}/db/replicas")),
        "{out}"
    );
    assert!(out.contains("plan: 4 to create"), "{out}");
    assert_eq!(data(&rt, &zk, &format!("{root}/web/pool")), None, "a dry run writes nothing");

    ok(&server, &["apply", d, "-m", "from a directory"]);
    assert_eq!(data(&rt, &zk, &format!("{root}/db/replicas")), Some(b"3".to_vec()));
    let (code, out, err) = tree(&server, &["diff", d]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with(&format!("no changes: {root} matches")), "{out}");
    let (code, _, _) = tree(&server, &["apply", d, "--dry-run"]);
    assert_eq!(code, 0);

    std::fs::write(
        dir.path().join("again.yaml"),
        format!("format: ndsr-tree\nversion: 1\nroot: {root}/web\nnodes:\n  pool: {{json: 11}}\n"),
    )
    .unwrap();
    let (code, _, err) = tree(&server, &["diff", d]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains(&format!("two entries for the node {root}/web/pool: in ")), "{err}");
    assert!(err.contains("again.yaml") && err.contains("web.yaml"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let (code, _, err) = tree(&server, &["diff", empty.path().to_str().unwrap()]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("holds no tree file"), "{err}");
}
