//! TLS from the command line, and secrets: with trace logging, neither the
//! digest password nor the TLS key appears in any output.

mod common;

use common::*;
use ndsr_testkit::{unique_path, ZkServer};

/// Writes the TLS files of `server` (or the other CA's) into `dir`: the
/// `--tls-*` arguments.
fn tls_args(server: &ZkServer, dir: &std::path::Path, right_ca: bool) -> Vec<String> {
    let m = server.tls().unwrap();
    let ca = if right_ca { &m.ca_pem } else { &m.other_ca_pem };
    std::fs::write(dir.join("ca.pem"), ca).unwrap();
    std::fs::write(dir.join("client.pem"), &m.client_cert_pem).unwrap();
    std::fs::write(dir.join("client.key"), &m.client_key_pem).unwrap();
    ["ca.pem", "client.pem", "client.key"]
        .iter()
        .zip(["--tls-ca", "--tls-cert", "--tls-key"])
        .flat_map(|(file, flag)| [flag.to_string(), dir.join(file).display().to_string()])
        .collect()
}

#[test]
fn the_cli_talks_tls_and_a_wrong_ca_is_exit_3_with_the_reason() {
    let server = ZkServer::builder().tls(true).start().unwrap();
    let secure = server.tls_connect_string().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = unique_path("cli-tls");
    let mut args = tls_args(&server, dir.path(), true);
    let mut set = args.clone();
    set.extend(["set-data".into(), path.clone(), "--data".into(), r#"{"a":1}"#.into()]);
    let (code, _, err) = run(&secure, &set.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    args.extend(["get".into(), path.clone(), "-d".into(), "--format".into(), "json".into()]);
    let (code, out, err) = run(&secure, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"a\": 1"), "{out}");

    let mut wrong = tls_args(&server, dir.path(), false);
    wrong.extend(["get".into(), "/".into()]);
    let (code, _, err) = run(&secure, &wrong.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("the server's certificate does not check out"), "{err}");
    let (code, _, err) = run(&secure, &["--tls-ca", "/nonexistent/ca.pem", "get", "/"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("cannot read --tls-ca"), "{err}");
}

#[test]
fn trace_logs_and_errors_never_show_the_password_or_the_key() {
    let server = ZkServer::builder().tls(true).start().unwrap();
    let secure = server.tls_connect_string().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let password = "s3cret-pass-Zq9";
    let key = server.tls().unwrap().client_key_pem.clone();
    // A line of the key's base64 body: if any output held the key, it would hold this.
    let key_line = key.lines().nth(1).unwrap().to_string();
    let path = unique_path("cli-secrets");
    let mut outputs = Vec::new();
    for command in [
        vec!["set-data", path.as_str(), "--data", r#"{"a":1}"#],
        vec!["get", path.as_str(), "-d"],
        vec!["register", "/nope/../bad", "--data", "{}"],
    ] {
        let mut args = tls_args(&server, dir.path(), true);
        args.extend(["-vvv", "-u", "alice", "-p", password].map(String::from));
        args.extend(command.iter().map(|s| s.to_string()));
        let (_, out, err) = run(&secure, &args.iter().map(String::as_str).collect::<Vec<_>>());
        outputs.push(format!("{out}{err}"));
    }
    // A wrong CA: the error path, also at trace level.
    let mut args = tls_args(&server, dir.path(), false);
    args.extend(["-vvv", "-u", "alice", "-p", password, "get", "/"].map(String::from));
    let (code, out, err) = run(&secure, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 3);
    outputs.push(format!("{out}{err}"));
    let all = outputs.join("\n");
    assert!(all.contains("TRACE") || all.contains("DEBUG"), "trace logging was on");
    assert!(!all.contains(password), "the password leaked");
    assert!(!all.contains(&key_line), "the TLS key leaked");
}

#[test]
fn the_cli_authenticates_with_sasl_and_a_wrong_password_is_exit_5() {
    let server = ZkServer::builder().sasl_user("alice", "wonderland").start().unwrap();
    let servers = server.connect_string();
    let path = unique_path("cli-sasl");
    let (code, _, err) =
        run(&servers, &["--sasl", "-u", "alice", "-p", "wonderland", "set-data", &path, "--data", "{}"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) =
        run(&servers, &["-vvv", "--sasl", "-u", "alice", "-p", "wrong-pass-Xy7", "get", &path]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("ZooKeeper refused the credentials"), "{err}");
    assert!(!err.contains("wrong-pass-Xy7"), "the password leaked");
}
