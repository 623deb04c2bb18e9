//! What an installer and an operator meet first (issue 28): shell
//! completions and man pages made from the command line's own definitions,
//! `--version` naming the commit, `--log-format json`, and the agent's
//! default configuration file.

mod common;

#[allow(dead_code)]
#[path = "../build.rs"]
mod build;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

use assert_cmd::cargo::CommandCargoExt;
use common::*;
use ndsr_testkit::{unique_path, ZkServer};
use serde_json::Value;

/// `ndsr ARGS` without a server, stdout and stderr captured.
fn ndsr_out(args: &[&str]) -> (i32, String, String) {
    let out = Command::cargo_bin("ndsr").unwrap().args(args).env_remove("NDSR_LOG_FORMAT").output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn has(program: &str) -> bool {
    Command::new(program).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// The subcommands `ndsr [PATH...] --help` lists (clap's own help, not the
/// generators'), `help` aside.
fn subcommands(path: &[&str]) -> Vec<String> {
    let mut args = path.to_vec();
    args.push("--help");
    let (code, help, _) = ndsr_out(&args);
    assert_eq!(code, 0, "ndsr {args:?}");
    let Some(start) = help.find("Commands:\n") else { return Vec::new() };
    help[start + "Commands:\n".len()..]
        .lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// Every visible command path below `path`, e.g. ["config", "publish"].
fn command_paths(path: Vec<String>, into: &mut Vec<Vec<String>>) {
    let names: Vec<&str> = path.iter().map(String::as_str).collect();
    for sub in subcommands(&names) {
        let mut child = path.clone();
        child.push(sub);
        into.push(child.clone());
        command_paths(child, into);
    }
}

#[test]
fn bash_completion_loads_and_completes_subcommands_and_values() {
    let (code, script, _) = ndsr_out(&["completions", "bash"]);
    assert_eq!(code, 0);
    assert!(!script.contains("__ndsr-leash"), "the leash is ndsr's own");
    let complete = |words: &str, cword: usize| {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ndsr.bash");
        std::fs::write(&file, &script).unwrap();
        let line = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; \
             _ndsr ndsr \"${{COMP_WORDS[$COMP_CWORD]}}\" \"${{COMP_WORDS[$COMP_CWORD-1]}}\"; \
             echo \"${{COMPREPLY[@]}}\"",
            file.display()
        );
        let out = Command::new("bash").arg("--norc").arg("-c").arg(&line).output().unwrap();
        assert!(out.status.success(), "bash: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(complete("ndsr ag", 1), "agent");
    let config = complete("ndsr config pu", 2);
    assert_eq!(config, "publish");
    let formats = complete("ndsr get --log-format ''", 3);
    assert_eq!(formats, "text json");
    let all: BTreeSet<String> = complete("ndsr ''", 1).split_whitespace().map(str::to_string).collect();
    for sub in subcommands(&[]) {
        assert!(all.contains(&sub), "{sub} not completed: {all:?}");
    }
}

#[test]
fn zsh_fish_elvish_powershell_scripts_name_every_subcommand() {
    let subs = subcommands(&[]);
    assert!(subs.len() > 10 && subs.contains(&"agent".to_string()), "{subs:?}");
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let (code, script, err) = ndsr_out(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {err}");
        for sub in &subs {
            assert!(script.contains(sub.as_str()), "{shell} script does not name {sub}");
        }
        assert!(!script.contains("__ndsr-leash"), "{shell}");
    }
    // A shell that is installed checks its script's syntax.
    for (shell, check) in [("zsh", "-n"), ("fish", "--no-execute")] {
        if !has(shell) {
            eprintln!("{shell} not installed: its script's syntax is not checked");
            continue;
        }
        let (_, script, _) = ndsr_out(&["completions", shell]);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ndsr");
        std::fs::write(&file, script).unwrap();
        let out = Command::new(shell).arg(check).arg(&file).output().unwrap();
        assert!(out.status.success(), "{shell}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let (code, _, err) = ndsr_out(&["completions", "tcsh"]);
    assert_eq!(code, 2, "{err}");
}

/// A man page renders (groff, warnings as errors) or, without groff, at
/// least starts as one.
fn assert_renders(page: &Path, title: &str) {
    let text = std::fs::read_to_string(page).unwrap();
    assert!(text.contains(&format!(".TH {title} 1 ")), "{}: no .TH {title} 1", page.display());
    assert!(text.contains(".SH NAME\n") && text.contains(".SH SYNOPSIS\n"), "{}", page.display());
    if !has("groff") {
        return;
    }
    let out = Command::new("groff").args(["-man", "-Tutf8", "-ww", "-rLL=80n"]).arg(page).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "{}: {stderr}", page.display());
    // grotty's bold is overstruck (X BACKSPACE X): drop the struck-over ones.
    let mut rendered = String::new();
    for c in String::from_utf8_lossy(&out.stdout).chars() {
        match c {
            '\u{8}' => drop(rendered.pop()),
            c => rendered.push(c),
        }
    }
    assert!(
        rendered.contains("\nNAME\n") && rendered.contains("\nSYNOPSIS\n"),
        "{}: {rendered}",
        page.display()
    );
}

#[test]
fn man_pages_one_per_visible_command_and_each_renders() {
    let (code, page, _) = ndsr_out(&["man"]);
    assert_eq!(code, 0);
    let dir = tempfile::tempdir().unwrap();
    let printed = dir.path().join("printed.1");
    std::fs::write(&printed, &page).unwrap();
    assert_renders(&printed, "ndsr");
    assert!(page.contains("\\-\\-log\\-format"), "the global options are described");

    let out = dir.path().join("man1");
    let (code, _, err) = ndsr_out(&["man", "-o", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(out.join("ndsr.1")).unwrap(),
        page,
        "ndsr.1 is what `ndsr man` prints"
    );
    let mut paths = Vec::new();
    command_paths(Vec::new(), &mut paths);
    assert!(paths.iter().any(|p| p == &["config", "publish"]), "{paths:?}");
    let mut expected: BTreeSet<String> = paths.iter().map(|p| format!("ndsr-{}.1", p.join("-"))).collect();
    expected.insert("ndsr.1".into());
    let written: BTreeSet<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(written, expected, "a page for each visible command, and no other");
    for name in &written {
        assert_renders(&out.join(name), name.trim_end_matches(".1"));
    }
    // man itself finds and shows a page by its path.
    if has("man") {
        let shown =
            Command::new("man").arg("-l").arg(out.join("ndsr-agent.1")).env("MANPAGER", "cat").output();
        let shown = shown.unwrap();
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(shown.status.success() && text.contains("/etc/ndsr/agent.toml"), "{text}");
    }
    // An out dir that cannot be made: an error, not a panic.
    let blocked = dir.path().join("file");
    std::fs::write(&blocked, "").unwrap();
    let (code, _, err) = ndsr_out(&["man", "-o", blocked.join("sub").to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot write"), "{err}");
}

#[test]
fn version_names_the_commit_when_built_from_git() {
    let (code, version, _) = ndsr_out(&["--version"]);
    assert_eq!(code, 0);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let git = |args: &[&str]| {
        let out = Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let expected = match (git(&["rev-parse", "--short=12", "HEAD"]), git(&["log", "-1", "--format=%cs"])) {
        (Some(commit), Some(date)) => format!("ndsr {} ({commit} {date})", env!("CARGO_PKG_VERSION")),
        _ => format!("ndsr {}", env!("CARGO_PKG_VERSION")),
    };
    assert_eq!(version.trim_end(), expected);

    // Without git's knowledge (a directory outside any checkout), no
    // commit; a published crate names the commit it records.
    let bare = tempfile::tempdir().unwrap();
    let nothing = build::describe(bare.path());
    assert!(nothing.commit.is_none() && nothing.date.is_none() && nothing.watch.is_empty(), "{nothing:?}");
    std::fs::write(
        bare.path().join(".cargo_vcs_info.json"),
        "{\n  \"git\": {\n    \"sha1\": \"0123456789abcdef0123456789abcdef01234567\"\n  },\n  \"path_in_vcs\": \"crates/ndsr-cli\"\n}",
    )
    .unwrap();
    let published = build::describe(bare.path());
    assert_eq!(published.commit.as_deref(), Some("0123456789ab"));
    std::fs::write(bare.path().join(".cargo_vcs_info.json"), "{\"path_in_vcs\": \"\"}").unwrap();
    assert_eq!(build::describe(bare.path()).commit, None, "no sha1: no commit");
    // In a checkout, the build script watches files that exist (a missing
    // one would rebuild the CLI every time).
    let here = build::describe(dir);
    if here.commit.is_some() {
        assert!(!here.watch.is_empty() && here.watch.iter().all(|p| p.exists()), "{:?}", here.watch);
    }
}

/// A stderr line as JSON: every line the agent logs must be one.
fn json_line(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"))
}

#[test]
fn agent_reads_the_default_config_and_logs_json_lines() {
    let server = ZkServer::shared().connect_string();
    let dir = tempfile::tempdir().unwrap();
    let default = dir.path().join("agent.toml");
    let root = unique_path("install");

    // No --config and no default file: refused, naming both.
    let out =
        ndsr(&server, &["agent", "--check"]).env("NDSR_AGENT_DEFAULT_CONFIG", &default).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("--config") && err.contains(default.to_str().unwrap()), "{err}");
    // Without the override, the default is /etc/ndsr/agent.toml (help and error).
    let (_, help, _) = ndsr_out(&["agent", "--help"]);
    assert!(help.contains("/etc/ndsr/agent.toml"), "{help}");
    assert!(!help.contains("DEFAULT_CONFIG"), "the override is for tests: {help}");

    std::fs::write(&default, format!("roots = [\"{root}\"]\n")).unwrap();
    let (code, ok, err) = {
        let out =
            ndsr(&server, &["agent", "--check"]).env("NDSR_AGENT_DEFAULT_CONFIG", &default).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(ok.trim(), format!("{}: OK", default.display()));

    // The agent runs on the default file, and logs JSON (the flag here; the
    // environment in the next run).
    let mut child = ndsr(&server, &["-v", "--log-format", "json", "agent", "--listen", "127.0.0.1:0"])
        .env("NDSR_AGENT_DEFAULT_CONFIG", &default)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = forward(child.stdout.take().unwrap(), false);
    let errors = forward(child.stderr.take().unwrap(), true);
    let agent = Running { child, lines, errors };
    agent.line_where("listening", |l| l.contains("listening on"));
    let first = json_line(&agent.error_where("the default file's log line", |l| l.contains("default file")));
    assert_eq!(first["level"], "INFO", "{first}");
    assert_eq!(first["fields"]["config"], default.to_str().unwrap(), "{first}");
    assert!(first["timestamp"].is_string() && first["target"].is_string(), "{first}");

    // A refused reload is a warning or an error, as JSON; every line so
    // far was JSON.
    std::fs::write(&default, "roots = [").unwrap();
    agent.signal(nix::sys::signal::Signal::SIGHUP);
    let refused = agent.error_where("the refused reload", |l| l.to_lowercase().contains("reload"));
    let refused = json_line(&refused);
    assert!(["WARN", "ERROR"].contains(&refused["level"].as_str().unwrap_or("")), "{refused}");
    while let Ok(line) = agent.errors.try_recv() {
        json_line(&line);
    }
    agent.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(agent.wait(), 0);

    // NDSR_LOG_FORMAT=json: a command's warning (here the refusal a bad
    // file gets) is a JSON line too, without -v.
    std::fs::write(&default, format!("roots = [\"{root}\"]\n")).unwrap();
    let mut child = ndsr(&server, &["agent", "--listen", "127.0.0.1:0"])
        .env("NDSR_AGENT_DEFAULT_CONFIG", &default)
        .env("NDSR_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = forward(child.stdout.take().unwrap(), false);
    let errors = forward(child.stderr.take().unwrap(), true);
    let agent = Running { child, lines, errors };
    agent.line_where("listening", |l| l.contains("listening on"));
    std::fs::write(&default, "roots = [").unwrap();
    agent.signal(nix::sys::signal::Signal::SIGHUP);
    let refused =
        json_line(&agent.error_where("the refused reload", |l| l.to_lowercase().contains("reload")));
    assert!(["WARN", "ERROR"].contains(&refused["level"].as_str().unwrap_or("")), "{refused}");
    agent.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(agent.wait(), 0);
    let (code, _, err) = ndsr_out(&["--log-format", "xml", "man"]);
    assert_eq!(code, 2, "{err}");
}
