//! The agent's templates against a real ZooKeeper (issue 22): a template
//! error is visible (health, metrics, dashboard) until a render succeeds
//! again; node data's numbers render as numbers; a hostile instance is
//! reported bad, never listed, picked or rendered into the shipped sample.

mod common;

use std::path::Path;

use common::agent::{Agent, TOKEN};
use common::*;
use ndsr::discovery::CuratorInstance;
use ndsr_testkit::{unique_path, ZkServer};
use serde_json::json;

fn config(root: &str, extra: &str) -> String {
    format!("roots = [\"{root}\"]\n[http]\ntoken = \"{TOKEN}\"\n{extra}")
}

fn registry(rt: &tokio::runtime::Runtime, server: &str) -> ndsr::Registry {
    rt.block_on(ndsr::Registry::builder(server).build()).unwrap()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The value of the metric line `name{labels}` in `/metrics`, if any.
fn metric(agent: &Agent, line_start: &str) -> Option<String> {
    let text = agent.http().get("/metrics").text;
    text.lines().find_map(|l| l.strip_prefix(line_start).map(|v| v.trim().to_string()))
}

#[test]
fn a_template_error_shows_in_health_metrics_and_the_dashboard_until_a_render_succeeds() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let root = unique_path("agent-template-error");
    let writer = registry(&rt, &server);
    // No `zone` label: the old sample's `{% if i.labels.zone %}` is an error
    // under strict undefined.
    rt.block_on(writer.set_node(&format!("{root}/web/10.0.0.1:80"), json!({"w": 5}))).unwrap();
    let broken = "{% for i in services.web %}server {{ i.address }}{% if i.labels.zone %} # {{ i.labels.zone }}{% endif %}\n{% endfor %}";
    let extra = format!(
        "[[service]]\npath = \"{root}/web\"\n\
         [[template]]\nsource = \"web.j2\"\ndestination = \"out/web.cfg\"\n"
    );
    let agent = Agent::start_with(&server, &config(&root, &extra), &[], |dir| {
        std::fs::create_dir(dir.join("out")).unwrap();
        std::fs::write(dir.join("web.j2"), broken).unwrap();
        std::fs::write(dir.join("out/web.cfg"), "last good\n").unwrap();
    });
    let file = agent.dir.path().join("out/web.cfg");
    let destination = file.display().to_string();

    // The health check says which template failed and why: 503, degraded.
    // (503 also while the agent first connects: wait for the template's.)
    poll("the health check reports the template", || {
        agent.http().get("/v1/health").body["templates"].as_array().is_some_and(|t| !t.is_empty())
    });
    let health = agent.http().get("/v1/health");
    assert_eq!(health.status, 503, "{}", health.text);
    assert_eq!(health.body["status"], "degraded", "{}", health.text);
    assert_eq!(health.body["zookeeper"], "connected", "ZooKeeper is fine: {}", health.text);
    let failed = &health.body["templates"][0];
    assert!(failed["template"].as_str().unwrap().ends_with("out/web.cfg"), "{}", health.text);
    assert!(failed["source"].as_str().unwrap().ends_with("web.j2"), "{}", health.text);
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("undefined") && error.contains("web.j2:1"), "{error}");
    assert_eq!(failed["ok"], false);
    assert!(failed["at_ms"].as_u64().is_some() && failed["since_ms"].as_u64().is_some(), "{failed}");
    assert_eq!(read(&file), "last good\n", "the file is kept");

    // The metrics and the dashboard's model say it too.
    let gauge = format!("ndsr_template_ok{{template=\"{destination}\"}}");
    assert_eq!(metric(&agent, &gauge).as_deref(), Some("0"), "{gauge}");
    let model = agent.http().with_token(TOKEN).get("/v1/agent").body;
    let shown = &model["templates"][0];
    assert_eq!((&shown["ok"], shown["error"].as_str()), (&json!(false), Some(error)), "{model}");

    // Fixed: the source rewritten, a change in ZooKeeper renders it again.
    let fixed = "{% for i in services.web %}server {{ i.address }}{% if i.labels.zone is defined %} # {{ i.labels.zone }}{% endif %} w={{ i.data.w }} w+1={{ i.data.w + 1 }}\n{% endfor %}";
    std::fs::write(agent.dir.path().join("web.j2"), fixed).unwrap();
    rt.block_on(writer.set_node(&format!("{root}/web/10.0.0.2:80"), json!({"zone": "b", "w": 7}))).unwrap();
    poll("the fixed template renders", || {
        read(&file) == "server 10.0.0.1:80 w=5 w+1=6\nserver 10.0.0.2:80 # b w=7 w+1=8\n"
    });
    poll("healthy again", || agent.http().get("/v1/health").status == 200);
    let health = agent.http().get("/v1/health");
    assert_eq!(
        (&health.body["status"], &health.body["templates"]),
        (&json!("ok"), &json!([])),
        "{}",
        health.text
    );
    assert_eq!(metric(&agent, &gauge).as_deref(), Some("1"));
    let model = agent.http().with_token(TOKEN).get("/v1/agent").body;
    assert_eq!(model["templates"][0]["ok"], true, "{model}");
    assert!(model["templates"][0].get("error").is_none(), "{model}");
    rt.block_on(writer.close());
}

#[test]
fn a_hostile_instance_is_bad_never_listed_picked_or_rendered() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let root = unique_path("agent-hostile");
    let base = format!("{root}/discovery");
    let writer = registry(&rt, &server);
    for (service, id, address) in [("web", "i-1", "10.0.0.1"), ("api", "a-1", "10.0.1.1")] {
        rt.block_on(writer.announce_curator(&base, &CuratorInstance::new(service, id, address, 8080)))
            .unwrap();
    }
    // Issue 22's exact payload, and its cousins.
    let curator = |id: &str, address: &str, port: u16| {
        serde_json::to_vec(
            &json!({"name": "web", "id": id, "address": address, "port": port, "sslPort": null,
            "payload": null, "registrationTimeUTC": 1, "serviceType": "DYNAMIC", "uriSpec": null}),
        )
        .unwrap()
    };
    let hostile = [
        ("evil", curator("evil", "10.0.0.9 check\n    server evil 6.6.6.6:443", 80)),
        ("script", curator("script", "<script>alert(1)</script>", 80)),
        ("zero", curator("zero", "10.0.0.8", 0)),
    ];
    for (id, bytes) in &hostile {
        rt.block_on(writer.set_node_raw(&format!("{base}/web/{id}"), bytes.clone())).unwrap();
    }
    // Review of issue 22: an id with a space (the sample's `cfg_token`
    // refuses it) or a label with a newline (`cfg` refuses it) stopped the
    // render of every service: they are bad.
    let api = |id: &str, payload: serde_json::Value| {
        serde_json::to_vec(
            &json!({"name": "api", "id": id, "address": "10.0.1.9", "port": 8080, "sslPort": null,
            "payload": payload, "registrationTimeUTC": 1, "serviceType": "DYNAMIC", "uriSpec": null}),
        )
        .unwrap()
    };
    rt.block_on(writer.set_node_raw(&format!("{base}/api/spaced"), api("x y", json!(null)))).unwrap();
    rt.block_on(writer.set_node_raw(&format!("{base}/api/label"), api("a-9", json!({"zone": "a\nb"}))))
        .unwrap();
    let listing = rt.block_on(writer.instances(&format!("{base}/api"), None)).unwrap();
    let keys: Vec<&str> = listing.instances.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["a-1"], "{listing:?}");
    let api_bad: Vec<(&str, &str)> =
        listing.bad.iter().map(|b| (b.key.as_str(), b.reason.as_str())).collect();
    assert_eq!(
        api_bad,
        [
            ("label", r#"the label "zone" = "a\nb" holds the control character '\n'"#),
            ("spaced", r#"the id "x y" holds ' ': an id is one word"#)
        ]
    );

    // The library: bad, with the reason; never an instance.
    let listing = rt.block_on(writer.instances(&format!("{base}/web"), None)).unwrap();
    let keys: Vec<&str> = listing.instances.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["i-1"], "{listing:?}");
    let bad: Vec<(&str, &str)> = listing.bad.iter().map(|b| (b.key.as_str(), b.reason.as_str())).collect();
    assert_eq!(bad.len(), 3, "{bad:?}");
    assert_eq!(
        bad[0],
        (
            "evil",
            r#"`address` "10.0.0.9 check\n    server evil 6.6.6.6:443" is not a host name or an IP address"#
        )
    );
    assert!(bad[1].0 == "script" && bad[1].1.contains("is not a host name or an IP address"), "{bad:?}");
    assert_eq!(bad[2], ("zero", "`port` 0 is not a port (1-65535)"));

    // `ndsr pick` never picks it, and `get --instances` says why on one line.
    for _ in 0..10 {
        let (code, out, err) = run(&server, &["pick", &format!("{base}/web")]);
        assert_eq!((code, out.as_str()), (0, "10.0.0.1:8080\n"), "{err}");
    }
    let (code, out, err) = run(&server, &["get", &format!("{base}/web"), "--instances", "--format", "dir"]);
    assert_eq!((code, out.as_str()), (0, "10.0.0.1:8080\n"), "{err}");
    assert!(err.lines().any(|l| l.contains("/web/evil is not an instance: `address`")), "{err}");
    assert!(!err.lines().any(|l| l.trim_start().starts_with("server evil")), "one line each: {err}");

    // The agent: in `bad` with the reason, not listed, not picked, and the
    // shipped sample template renders only the good instances.
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/agent/haproxy.cfg.j2");
    let extra = format!(
        "[[service]]\npath = \"{base}/web\"\n[[service]]\npath = \"{base}/api\"\n\
         [[template]]\nsource = \"{}\"\ndestination = \"out/haproxy.cfg\"\n",
        sample.display()
    );
    let agent = Agent::start_with(&server, &config(&root, &extra), &[], |dir| {
        std::fs::create_dir(dir.join("out")).unwrap();
    });
    let services = agent.http().get(&format!("/v1/services{base}/web"));
    assert_eq!(services.status, 200, "{}", services.text);
    let listed: Vec<&str> =
        services.body["instances"].as_array().unwrap().iter().map(|i| i["key"].as_str().unwrap()).collect();
    assert_eq!(listed, ["i-1"], "{}", services.text);
    assert_eq!(services.body["bad"][0]["key"], "evil", "{}", services.text);
    assert_eq!(services.body["bad"][0]["reason"], bad[0].1, "{}", services.text);
    let services = agent.http().get(&format!("/v1/services{base}/api"));
    let bad_keys: Vec<&str> =
        services.body["bad"].as_array().unwrap().iter().map(|b| b["key"].as_str().unwrap()).collect();
    assert_eq!(bad_keys, ["label", "spaced"], "{}", services.text);
    for _ in 0..5 {
        let picked = agent.http().get(&format!("/v1/pick{base}/web"));
        assert_eq!(picked.body["instance"]["address"], "10.0.0.1:8080", "{}", picked.text);
    }
    let file = agent.dir.path().join("out/haproxy.cfg");
    poll("the sample renders", || read(&file).contains("server a-1 10.0.1.1:8080 check"));
    let text = read(&file);
    assert!(text.contains("\n    server i-1 10.0.0.1:8080 check\n"), "{text}");
    assert!(text.contains("# 1 web and 1 api instances serving."), "{text}");
    assert!(!text.contains("evil") && !text.contains("script") && !text.contains("10.0.0.8"), "{text}");
    assert!(!text.contains("10.0.1.9"), "{text}");
    assert_eq!(agent.http().get("/v1/health").status, 200);
    rt.block_on(writer.close());
}

#[test]
fn numbers_in_node_data_are_numbers_in_templates_the_api_and_the_cli() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let root = unique_path("agent-numbers");
    let writer = registry(&rt, &server);
    let path = format!("{root}/web/10.0.0.1:80");
    let data: serde_json::Value =
        serde_json::from_str(r#"{"w":5,"f":2.5,"big":123456789012345678901234567890}"#).unwrap();
    rt.block_on(writer.set_node(&path, data)).unwrap();
    let source = "{% for i in services.web %}{{ i.data.w }} {{ i.data.w + 1 }} {{ i.data.f }} {{ i.data.big }} {{ i.data.pid > 0 }}\n{% endfor %}";
    let extra = format!(
        "[[service]]\npath = \"{root}/web\"\n[[template]]\nsource = \"web.j2\"\ndestination = \"out/web.cfg\"\n"
    );
    let agent = Agent::start_with(&server, &config(&root, &extra), &[], |dir| {
        std::fs::create_dir(dir.join("out")).unwrap();
        std::fs::write(dir.join("web.j2"), source).unwrap();
    });
    let file = agent.dir.path().join("out/web.cfg");
    poll("the render", || !read(&file).is_empty());
    assert_eq!(read(&file), "5 6 2.5 123456789012345678901234567890 True\n");

    let node = agent.http().get(&format!("/v1/nodes{path}"));
    for exact in [r#""w":5"#, r#""f":2.5"#, r#""big":123456789012345678901234567890"#] {
        assert!(node.text.contains(exact), "{exact} in {}", node.text);
    }
    assert!(!node.text.contains("serde_json"), "{}", node.text);
    for format in ["json", "yaml"] {
        let (code, out, err) = run(&server, &["get", &path, "--data", "--format", format]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("123456789012345678901234567890") && !out.contains("serde_json"), "{out}");
    }
    rt.block_on(writer.close());
}

#[test]
fn a_template_waiting_too_long_for_a_list_it_cannot_read_is_reported() {
    // Review of issue 22: a service the agent may not read (an ACL) left
    // its template unrendered forever while /v1/health said ok.
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let root = unique_path("agent-template-wait");
    let owner = zk(&rt, &server);
    rt.block_on(owner.auth("digest", b"owner:secret")).unwrap();
    let open = zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    rt.block_on(owner.mkdir(&root, &open)).unwrap();
    let locked = format!("{root}/locked");
    let closed = zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::creator_all());
    rt.block_on(owner.create(&locked, b"", &closed)).unwrap();
    let extra = format!(
        "[[service]]\npath = \"{locked}\"\n\
         [[template]]\nsource = \"web.j2\"\ndestination = \"out/web.cfg\"\nwait_limit = \"1s\"\n"
    );
    let agent = Agent::start_with(&server, &config(&root, &extra), &[], |dir| {
        std::fs::create_dir(dir.join("out")).unwrap();
        std::fs::write(dir.join("web.j2"), "{{ services.locked | length }}\n").unwrap();
    });
    let file = agent.dir.path().join("out/web.cfg");
    let destination = file.display().to_string();
    poll("the health check reports the template", || {
        agent.http().get("/v1/health").body["templates"].as_array().is_some_and(|t| !t.is_empty())
    });
    let health = agent.http().get("/v1/health");
    assert_eq!((health.status, &health.body["status"]), (503, &json!("degraded")), "{}", health.text);
    assert_eq!(health.body["zookeeper"], "connected", "{}", health.text);
    let failed = &health.body["templates"][0];
    assert_eq!(failed["template"], destination.as_str(), "{}", health.text);
    assert_eq!(failed["waiting"], json!([locked]), "{}", health.text);
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains(&format!("no list of {locked} after 1s (wait_limit)")), "{error}");
    let gauge = format!("ndsr_template_ok{{template=\"{destination}\"}}");
    assert_eq!(metric(&agent, &gauge).as_deref(), Some("0"), "{gauge}");
    assert!(!file.exists(), "never rendered");
    drop(owner);
}

#[test]
fn the_sample_renders_and_its_command_notes_the_change_where_there_is_no_haproxy() {
    // docs/agent.example.toml and its template, as shipped, in a chroot of
    // their own; a PATH with a shell and date but no haproxy (the demo's
    // case): the command notes the change instead of reloading HAProxy.
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let root = unique_path("agent-sample");
    let writer = registry(&rt, &server);
    rt.block_on(writer.set_node(&format!("{root}/services/web/10.0.0.9:80"), json!({"zone": "a"}))).unwrap();
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("agent/out")).unwrap();
    std::fs::copy(docs.join("agent.example.toml"), dir.path().join("agent.example.toml")).unwrap();
    std::fs::copy(docs.join("agent/haproxy.cfg.j2"), dir.path().join("agent/haproxy.cfg.j2")).unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for tool in ["sh", "date"] {
        let found = ["/bin", "/usr/bin"].iter().map(|d| Path::new(d).join(tool)).find(|p| p.exists());
        std::os::unix::fs::symlink(found.expect(tool), bin.join(tool)).unwrap();
    }
    let config = dir.path().join("agent.example.toml");
    let out = ndsr(&format!("{server}{root}"), &["agent", "--config", config.to_str().unwrap(), "--once"])
        .env("PATH", &bin)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let cfg = read(&dir.path().join("agent/out/haproxy.cfg"));
    assert!(cfg.contains("\n    server 10.0.0.9_80 10.0.0.9:80 check # zone a\n"), "{cfg}");
    let noted = read(&dir.path().join("agent/out/reloads.log"));
    assert!(noted.ends_with("haproxy.cfg changed; no haproxy here to reload\n"), "{noted:?}");
    rt.block_on(writer.close());
}

#[test]
fn a_template_error_names_the_templates_file_and_line() {
    // A syntax error (found when the template is compiled) and an
    // undefined name (found when it renders): each names the source file
    // and the line, never minijinja's `<string>`.
    let server = ZkServer::shared().connect_string();
    let root = unique_path("agent-template-name");
    let extra = format!(
        "[[service]]\npath = \"{root}/web\"\n\
         [[template]]\nsource = \"tpl/syntax.j2\"\ndestination = \"out/syntax.cfg\"\n\
         [[template]]\nsource = \"tpl/undefined.j2\"\ndestination = \"out/undefined.cfg\"\n"
    );
    let agent = Agent::start_with(&server, &config(&root, &extra), &[], |dir| {
        std::fs::create_dir_all(dir.join("tpl")).unwrap();
        std::fs::create_dir(dir.join("out")).unwrap();
        std::fs::write(
            dir.join("tpl/syntax.j2"),
            "backend web\n{% for i in services.web %}\n  {{ i.address }\n",
        )
        .unwrap();
        std::fs::write(dir.join("tpl/undefined.j2"), "backend web\n\n{{ nope }}\n").unwrap();
    });
    poll("both templates fail", || {
        agent.http().get("/v1/health").body["templates"].as_array().is_some_and(|t| t.len() == 2)
    });
    let health = agent.http().get("/v1/health");
    let error_of = |name: &str| {
        let templates = health.body["templates"].as_array().unwrap();
        let failed = templates.iter().find(|t| t["template"].as_str().unwrap().ends_with(name)).unwrap();
        failed["error"].as_str().unwrap().to_string()
    };
    let syntax = error_of("out/syntax.cfg");
    assert!(syntax.contains("syntax error") && syntax.contains("(in syntax.j2:3)"), "{syntax}");
    let undefined = error_of("out/undefined.cfg");
    assert!(undefined.contains("undefined value (in undefined.j2:3)"), "{undefined}");
    assert!(undefined.ends_with("`{{ nope }}`"), "the line that failed: {undefined}");
    for error in [&syntax, &undefined] {
        assert!(!error.contains("<string>"), "{error}");
    }
    // So does the log.
    let logged = agent.running.error_where("the syntax error logged", |l| l.contains("syntax.j2"));
    assert!(logged.contains("(in syntax.j2:3)") && !logged.contains("<string>"), "{logged}");
}
