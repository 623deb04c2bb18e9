//! Names the commit `ndsr --version` was built from.
//!
//! Sets `NDSR_BUILD_INFO` to ` (COMMIT DATE)` (the commit abbreviated to
//! 12 digits, its commit date as YYYY-MM-DD) when the crate is built from a
//! git checkout, to ` (COMMIT)` when built from a published crate that
//! records its commit (`.cargo_vcs_info.json`), and to nothing when neither
//! is known (no git, no `.git`). `NDSR_BUILD_DATE` is the date alone (or
//! empty), for the man pages. The build script runs again when HEAD or the
//! branch it points to moves, so the commit is never stale.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    println!("cargo:rerun-if-changed=build.rs");
    let build = describe(&dir);
    for watched in &build.watch {
        println!("cargo:rerun-if-changed={}", watched.display());
    }
    let info = match (&build.commit, &build.date) {
        (Some(commit), Some(date)) => format!(" ({commit} {date})"),
        (Some(commit), None) => format!(" ({commit})"),
        _ => String::new(),
    };
    println!("cargo:rustc-env=NDSR_BUILD_INFO={info}");
    println!("cargo:rustc-env=NDSR_BUILD_DATE={}", build.date.unwrap_or_default());
}

/// What is known of the source the crate is built from.
#[derive(Debug, Default)]
pub struct Build {
    /// The commit, abbreviated to 12 digits.
    pub commit: Option<String>,
    /// The commit's date, YYYY-MM-DD.
    pub date: Option<String>,
    /// The files whose change moves the commit (git's HEAD, the branch's ref).
    pub watch: Vec<PathBuf>,
}

/// The commit of the crate at `dir`: from git when `dir` is in a git
/// checkout that tracks it, else from a published crate's
/// `.cargo_vcs_info.json`, else unknown. Never fails.
pub fn describe(dir: &Path) -> Build {
    let vcs_info = dir.join(".cargo_vcs_info.json");
    if vcs_info.exists() {
        // A published crate: it may lie unpacked inside someone else's
        // checkout (cargo package's own check does), whose HEAD is not its
        // commit.
        let commit = std::fs::read_to_string(&vcs_info).ok().and_then(|text| vcs_sha1(&text));
        return Build { commit, date: None, watch: vec![vcs_info] };
    }
    let Some(line) = git(dir, &["log", "-1", "--abbrev=12", "--format=%h %cs"]) else {
        return Build::default();
    };
    let mut words = line.split_whitespace();
    let commit = words.next().filter(|c| c.len() >= 7 && c.bytes().all(|b| b.is_ascii_hexdigit()));
    let date = words.next().filter(|d| d.len() == 10 && d.bytes().all(|b| b.is_ascii_digit() || b == b'-'));
    let (Some(commit), Some(date)) = (commit, date) else { return Build::default() };
    Build { commit: Some(commit.to_owned()), date: Some(date.to_owned()), watch: git_watch(dir) }
}

/// git's HEAD, and the file that holds the branch it points to (the loose
/// ref when there is one, else packed-refs): a path that does not exist
/// would run the build script on every build.
fn git_watch(dir: &Path) -> Vec<PathBuf> {
    // Relative to `dir` (git -C), or absolute: join() keeps an absolute one.
    let path = |name: &str| git(dir, &["rev-parse", "--git-path", name]).map(|p| dir.join(p));
    let mut watch: Vec<PathBuf> = path("HEAD").into_iter().collect();
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        match path(&branch) {
            Some(loose) if loose.exists() => watch.push(loose),
            _ => watch.extend(path("packed-refs")),
        }
    }
    watch.retain(|p| p.exists());
    watch
}

/// The first line of `git ARGS` run in `dir`, when git runs and succeeds.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let line = text.lines().next()?.trim().to_owned();
    (!line.is_empty()).then_some(line)
}

/// The commit in a `.cargo_vcs_info.json` (`{"git": {"sha1": "..."}}`),
/// abbreviated to 12 digits; read without a JSON parser (a build
/// dependency for one field is not worth it).
fn vcs_sha1(text: &str) -> Option<String> {
    let rest = &text[text.find("\"sha1\"")? + "\"sha1\"".len()..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    let sha1: String = rest.chars().take_while(char::is_ascii_hexdigit).collect();
    (sha1.len() >= 12).then(|| sha1[..12].to_owned())
}
