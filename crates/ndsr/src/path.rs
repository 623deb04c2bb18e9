//! ZooKeeper paths: validation, done before any network call, and a
//! path's parent and name.

use crate::{Error, Result};

/// Longest path ndsr accepts, in bytes. ZooKeeper's own bound is the
/// request size (`jute.maxbuffer`); a path this long is surely a mistake.
pub const MAX_PATH_BYTES: usize = 8 * 1024;

/// Checks that `path` is a valid absolute ZooKeeper path.
///
/// # Errors
/// [`Error::InvalidPath`] naming the problem: not starting with `/`, an
/// empty segment, a trailing `/`, a `.` or `..` segment, a NUL, control or
/// otherwise forbidden character (as ZooKeeper's `PathUtils` forbids them,
/// which includes every character outside the Basic Multilingual Plane), or
/// longer than [`MAX_PATH_BYTES`].
///
/// # Example
///
/// ```
/// assert!(ndsr::validate_path("/services/web/host1:80").is_ok());
/// assert!(ndsr::validate_path("services/web").is_err());
/// ```
pub fn validate_path(path: &str) -> Result<()> {
    let bad = |reason| Err(Error::InvalidPath { path: path.to_string(), reason });
    if path.is_empty() {
        return bad("the path is empty");
    }
    if !path.starts_with('/') {
        return bad("a path must start with '/'");
    }
    if path.len() > MAX_PATH_BYTES {
        return bad("the path is longer than 8 KiB");
    }
    if path == "/" {
        return Ok(());
    }
    if path.ends_with('/') {
        return bad("a path must not end with '/'");
    }
    for segment in path[1..].split('/') {
        match segment {
            "" => return bad("a path must not contain an empty segment ('//')"),
            "." | ".." => return bad("a path must not contain '.' or '..' segments"),
            _ => {}
        }
    }
    for c in path.chars() {
        if c == '\0' {
            return bad("a path must not contain NUL");
        }
        if c.is_control() {
            return bad("a path must not contain control characters");
        }
        // ZooKeeper's PathUtils checks UTF-16 code units: it rejects
        // U+D800-U+F8FF and U+FFF0-U+FFFF, and so every character outside
        // the Basic Multilingual Plane, whose surrogate pairs fall in the
        // first range.
        if ('\u{e000}'..='\u{f8ff}').contains(&c) || c >= '\u{fff0}' {
            return bad("a path must not contain characters in U+D800-U+F8FF, U+FFF0-U+FFFF or outside the Basic Multilingual Plane (emoji, for example)");
        }
    }
    Ok(())
}

/// The parent of a valid path (`None` for `/`).
///
/// ```
/// assert_eq!(ndsr::path::parent("/a/b"), Some("/a"));
/// assert_eq!(ndsr::path::parent("/a"), Some("/"));
/// assert_eq!(ndsr::path::parent("/"), None);
/// ```
pub fn parent(path: &str) -> Option<&str> {
    match path.rfind('/') {
        Some(0) if path.len() > 1 => Some("/"),
        Some(0) | None => None,
        Some(i) => Some(&path[..i]),
    }
}

/// The last segment of a valid path (empty for `/`).
///
/// ```
/// assert_eq!(ndsr::path::name("/a/b"), "b");
/// assert_eq!(ndsr::path::name("/"), "");
/// ```
pub fn name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or_default()
}

/// The path of the child `name` of `dir`.
pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// `child` relative to `parent` if it is a direct child.
pub(crate) fn direct_child<'a>(parent: &str, child: &'a str) -> Option<&'a str> {
    let rest = if parent == "/" {
        child.strip_prefix('/')?
    } else {
        child.strip_prefix(parent)?.strip_prefix('/')?
    };
    (!rest.is_empty() && !rest.contains('/')).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reason(path: &str) -> &'static str {
        match validate_path(path) {
            Err(Error::InvalidPath { reason, .. }) => reason,
            other => panic!("{path:?} gave {other:?}"),
        }
    }

    #[test]
    fn accepts_ordinary_paths() {
        for p in ["/", "/a", "/services/web/10.0.0.1:80", "/a-b_c.d/é", "/a/.b", "/a/..b"] {
            assert!(validate_path(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn names_each_problem() {
        assert_eq!(reason(""), "the path is empty");
        assert_eq!(reason("a/b"), "a path must start with '/'");
        assert_eq!(reason("/a/"), "a path must not end with '/'");
        assert_eq!(reason("/a//b"), "a path must not contain an empty segment ('//')");
        assert_eq!(reason("/a/./b"), "a path must not contain '.' or '..' segments");
        assert_eq!(reason("/a/.."), "a path must not contain '.' or '..' segments");
        assert_eq!(reason("/a\0b"), "a path must not contain NUL");
        assert_eq!(reason("/a\nb"), "a path must not contain control characters");
        let outside = "a path must not contain characters in U+D800-U+F8FF, U+FFF0-U+FFFF or outside the Basic Multilingual Plane (emoji, for example)";
        assert_eq!(reason("/a\u{fff5}"), outside);
        assert_eq!(reason("/\u{1f600}"), outside, "an emoji is a surrogate pair in Java");
        assert_eq!(reason("/svc/\u{10000}:80"), outside);
        assert_eq!(reason(&format!("/{}", "x".repeat(MAX_PATH_BYTES))), "the path is longer than 8 KiB");
    }

    #[test]
    fn parents_and_children() {
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/"), None);
        assert_eq!((name("/a/b"), name("/a"), name("/")), ("b", "a", ""));
        assert_eq!(direct_child("/a", "/a/b"), Some("b"));
        assert_eq!(direct_child("/a", "/a/b/c"), None);
        assert_eq!(direct_child("/a", "/ab"), None);
        assert_eq!(direct_child("/", "/x"), Some("x"));
        assert_eq!(direct_child("/a", "/a"), None);
    }

    proptest! {
        #[test]
        fn never_panics_and_valid_paths_rebuild(s in "\\PC{0,40}") {
            let _ = validate_path(&s);
        }

        #[test]
        fn joined_simple_segments_are_valid(segs in proptest::collection::vec("[a-z0-9:_-]{1,8}", 1..6)) {
            let p = format!("/{}", segs.join("/"));
            prop_assert!(validate_path(&p).is_ok());
            prop_assert_eq!(parent(&p).map(|x| direct_child(x, &p).is_some()), Some(true));
        }
    }
}
