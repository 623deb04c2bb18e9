//! The node layouts of kazoo's and Curator's locks: their nodes' names,
//! which layout a child belongs to, and whom a contender waits for (each
//! peer's own rule, read from its source).

/// Which client's node layout a lock uses (see [`LockBuilder::layout`](super::LockBuilder::layout)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LockLayout {
    /// kazoo's `Semaphore` (and the Python original's `get_lock`): holders
    /// `<path>/<uuid hex>`, a queue at `<path>-__lock__`; up to
    /// [`simultaneous`](super::LockBuilder::simultaneous) holders.
    #[default]
    Semaphore,
    /// kazoo's `Lock`, `ReadLock` and `WriteLock`:
    /// `<path>/<uuid hex>__lock__<seq>` (readers `__rlock__`).
    Kazoo,
    /// Curator's `InterProcessMutex` (`<path>/_c_<uuid>-lock-<seq>`) and
    /// `InterProcessReadWriteLock` (`_c_<uuid>-__READ__<seq>`,
    /// `_c_<uuid>-__WRIT__<seq>`).
    Curator,
}

impl LockLayout {
    /// Its name, as errors and the CLI say it: `semaphore`, `kazoo`,
    /// `curator`.
    pub fn name(self) -> &'static str {
        match self {
            LockLayout::Semaphore => "semaphore",
            LockLayout::Kazoo => "kazoo",
            LockLayout::Curator => "curator",
        }
    }
}

impl std::str::FromStr for LockLayout {
    type Err = crate::Error;

    /// Its [`name`](LockLayout::name).
    fn from_str(name: &str) -> crate::Result<LockLayout> {
        [LockLayout::Semaphore, LockLayout::Kazoo, LockLayout::Curator]
            .into_iter()
            .find(|l| l.name() == name)
            .ok_or(crate::Error::InvalidArgument("a lock layout is semaphore, kazoo or curator"))
    }
}

impl std::fmt::Display for LockLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How a lock is held (see [`LockBuilder::mode`](super::LockBuilder::mode)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LockMode {
    /// One holder: kazoo's `Lock`, Curator's `InterProcessMutex`, or the
    /// semaphore.
    #[default]
    Exclusive,
    /// A reader: held with other readers, waits for earlier writers
    /// (kazoo's `ReadLock`, Curator's read lock). Kazoo and Curator only.
    Read,
    /// A writer: waits for every earlier reader and writer (kazoo's
    /// `WriteLock`, Curator's write lock). Kazoo and Curator only.
    Write,
}

impl LockMode {
    /// Its name: `exclusive`, `read`, `write`.
    pub fn name(self) -> &'static str {
        match self {
            LockMode::Exclusive => "exclusive",
            LockMode::Read => "read",
            LockMode::Write => "write",
        }
    }
}

impl std::str::FromStr for LockMode {
    type Err = crate::Error;

    /// Its [`name`](LockMode::name).
    fn from_str(name: &str) -> crate::Result<LockMode> {
        [LockMode::Exclusive, LockMode::Read, LockMode::Write]
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or(crate::Error::InvalidArgument("a lock mode is exclusive, read or write"))
    }
}

impl std::fmt::Display for LockMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The layouts that cannot share a path, as [`Error::LayoutMismatch`](crate::Error::LayoutMismatch)
/// names them: each sorts (or counts) the others' nodes differently.
pub(crate) const SEMAPHORE: &str = "semaphore";
pub(crate) const KAZOO: &str = "kazoo";
/// Curator's `InterProcessMutex` (also `LeaderSelector`'s nodes).
pub(crate) const CURATOR_MUTEX: &str = "curator";
/// Curator's `InterProcessReadWriteLock`.
pub(crate) const CURATOR_RW: &str = "curator-rw";
const CURATOR_LATCH: &str = "curator-latch";

const KAZOO_LOCK: &str = "__lock__";
const KAZOO_READ: &str = "__rlock__";
const CURATOR_LOCK: &str = "lock-";
const CURATOR_READ: &str = "__READ__";
const CURATOR_WRITE: &str = "__WRIT__";

/// Ten ASCII digits, optionally after a '-' (a sequence past 2^31 wraps
/// negative): kazoo's `(-?\d{10})$`.
fn sequence_at_end(name: &str) -> Option<(&str, &str)> {
    let start = name.len().checked_sub(10)?;
    let digits = name.get(start..)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let body = &name[..start];
    match body.strip_suffix('-') {
        Some(head) => Some((head, &name[start - 1..])),
        None => Some((body, digits)),
    }
}

/// The family of a child's name, for refusing a path of another layout:
/// `None` for a name no lock client makes.
pub(crate) fn family(name: &str) -> Option<&'static str> {
    if let Some(rest) = name.strip_prefix("_c_") {
        // A protected name: a 36-character UUID, then '-'.
        let tail = rest.get(37..).filter(|_| rest.as_bytes().get(36) == Some(&b'-'))?;
        let (kind, digits) = tail.split_at(tail.len().checked_sub(10)?);
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        return match kind {
            CURATOR_LOCK => Some(CURATOR_MUTEX),
            CURATOR_READ | CURATOR_WRITE => Some(CURATOR_RW),
            "latch-" => Some(CURATOR_LATCH),
            _ => None,
        };
    }
    if name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some(SEMAPHORE);
    }
    let (body, _) = sequence_at_end(name)?;
    let head = body.strip_suffix(KAZOO_LOCK).or_else(|| body.strip_suffix(KAZOO_READ))?;
    (head.len() == 32 && head.bytes().all(|b| b.is_ascii_hexdigit())).then_some(KAZOO)
}

/// Where a contender stands among the children of the lock path.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Place {
    /// It holds the lock.
    Holds,
    /// It waits for this child to go.
    Behind(String),
    /// Its node is not among the children (deleted, or its session gone).
    Missing,
}

/// One contender's node name and rule, in one layout and mode.
#[derive(Debug, Clone)]
pub(super) struct Rule {
    layout: LockLayout,
    mode: LockMode,
    /// Our node's name up to the sequence (unique to this contender).
    pub(super) prefix: String,
}

impl Rule {
    /// `layout` is Kazoo or Curator.
    pub(super) fn new(layout: LockLayout, mode: LockMode, id: uuid::Uuid) -> Rule {
        let prefix = match (layout, mode) {
            (LockLayout::Curator, LockMode::Read) => format!("_c_{}-{CURATOR_READ}", id.hyphenated()),
            (LockLayout::Curator, LockMode::Write) => format!("_c_{}-{CURATOR_WRITE}", id.hyphenated()),
            (LockLayout::Curator, _) => format!("_c_{}-{CURATOR_LOCK}", id.hyphenated()),
            (_, LockMode::Read) => format!("{}{KAZOO_READ}", id.simple()),
            _ => format!("{}{KAZOO_LOCK}", id.simple()),
        };
        Rule { layout, mode, prefix }
    }

    /// The family this contender's nodes belong to.
    pub(super) fn family(&self) -> &'static str {
        match (self.layout, self.mode) {
            (LockLayout::Curator, LockMode::Exclusive) => CURATOR_MUTEX,
            (LockLayout::Curator, _) => CURATOR_RW,
            (LockLayout::Kazoo, _) => KAZOO,
            (LockLayout::Semaphore, _) => SEMAPHORE,
        }
    }

    /// Another layout's node among `children`, if any: its family.
    pub(super) fn foreign(&self, children: &[String]) -> Option<&'static str> {
        let ours = self.family();
        children.iter().filter_map(|c| family(c)).find(|f| *f != ours)
    }

    /// Where our node `node` (a name under the path) stands.
    pub(super) fn place(&self, children: &[String], node: &str) -> Place {
        match self.layout {
            LockLayout::Curator => self.curator(children, node),
            _ => self.kazoo(children, node),
        }
    }

    /// kazoo's `_get_predecessor`: of the children matching
    /// `(?:<excluded>)(-?\d{10})$` with a smaller sequence (compared as
    /// text), the greatest.
    fn kazoo(&self, children: &[String], node: &str) -> Place {
        let excluded: &[&str] = match self.mode {
            LockMode::Write => &[KAZOO_LOCK, KAZOO_READ],
            _ => &[KAZOO_LOCK],
        };
        if !children.iter().any(|c| c == node) {
            return Place::Missing;
        }
        let mine = node.get(self.prefix.len()..).unwrap_or_default();
        children
            .iter()
            .filter_map(|c| {
                let (body, seq) = sequence_at_end(c)?;
                excluded.iter().any(|e| body.ends_with(e)).then_some((seq, c))
            })
            .filter(|(seq, _)| *seq < mine)
            .max()
            .map_or(Place::Holds, |(_, c)| Place::Behind(c.clone()))
    }

    /// Curator's `LockInternals`: every child sorted by the text after
    /// the last lock name (the whole name without one); a mutex or writer
    /// holds when first and waits for the child just before it
    /// (`StandardLockInternalsDriver`); a reader holds when no writer is
    /// before it and waits for the first writer (`InterProcessReadWriteLock`).
    fn curator(&self, children: &[String], node: &str) -> Place {
        let key = |name: &str| -> String {
            match self.mode {
                LockMode::Exclusive => after_last(name, CURATOR_LOCK).to_string(),
                _ => after_last(after_last(name, CURATOR_READ), CURATOR_WRITE).to_string(),
            }
        };
        let mut sorted: Vec<&String> = children.iter().collect();
        // Stable, as Java's sort.
        sorted.sort_by_cached_key(|c| key(c));
        if self.mode == LockMode::Read {
            let mut first_write = None;
            for (i, c) in sorted.iter().enumerate() {
                if c.contains(CURATOR_WRITE) {
                    first_write.get_or_insert(i);
                } else if c.starts_with(node) {
                    return match first_write {
                        Some(w) => Place::Behind(sorted[w].clone()),
                        None => Place::Holds,
                    };
                }
            }
            return Place::Missing;
        }
        match sorted.iter().position(|c| *c == node) {
            None => Place::Missing,
            Some(0) => Place::Holds,
            Some(i) => Place::Behind(sorted[i - 1].clone()),
        }
    }
}

/// Curator's `standardFixForSorting`: the text after the last `lock_name`,
/// or all of `name` without one.
fn after_last<'a>(name: &'a str, lock_name: &str) -> &'a str {
    name.rfind(lock_name).map_or(name, |i| &name[i + lock_name.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    const H: &str = "0123456789abcdef0123456789abcdef";
    const U: &str = "8b8a2d6e-8a7e-4b7c-9c5e-3d2f1a0b9c8d";

    #[test]
    fn families_of_each_layout() {
        for (name, fam) in [
            (format!("{H}__lock__0000000001"), Some(KAZOO)),
            (format!("{H}__rlock__0000000002"), Some(KAZOO)),
            (format!("{H}__lock__-0000000002"), Some(KAZOO)),
            (format!("_c_{U}-lock-0000000003"), Some(CURATOR_MUTEX)),
            (format!("_c_{U}-__READ__0000000004"), Some(CURATOR_RW)),
            (format!("_c_{U}-__WRIT__0000000005"), Some(CURATOR_RW)),
            (format!("_c_{U}-latch-0000000006"), Some(CURATOR_LATCH)),
            (H.to_string(), Some(SEMAPHORE)),
            ("member_0000000001".to_string(), None),
            (format!("{H}__lock__00000001"), None),
            (format!("_c_{U}-lock-00000x0003"), None),
            ("x__lock__0000000001".to_string(), None),
        ] {
            assert_eq!(family(&name), fam, "{name}");
        }
    }

    #[test]
    fn the_families_agree_with_the_election_s_parser() {
        use crate::election::ElectionLayout;
        for name in [format!("{H}__lock__0000000001"), format!("_c_{U}-lock-0000000003")] {
            let election = ElectionLayout::of_node(&name).map(|(l, _)| l);
            let lock = family(&name);
            assert_eq!(
                (election, lock),
                if name.starts_with("_c_") {
                    (Some(ElectionLayout::CuratorSelector), Some(CURATOR_MUTEX))
                } else {
                    (Some(ElectionLayout::Kazoo), Some(KAZOO))
                }
            );
        }
    }

    #[test]
    fn kazoo_readers_wait_for_earlier_writers_only_writers_for_all() {
        let id = uuid::Uuid::nil();
        let read = Rule::new(LockLayout::Kazoo, LockMode::Read, id);
        let write = Rule::new(LockLayout::Kazoo, LockMode::Write, id);
        let lock = Rule::new(LockLayout::Kazoo, LockMode::Exclusive, id);
        let w1 = format!("{H}__lock__0000000001");
        let r2 = format!("{H}__rlock__0000000002");
        let my_r = format!("{}0000000003", read.prefix);
        let my_w = format!("{}0000000003", write.prefix);
        let children = names(&[&r2, &w1, &my_r, "junk"]);
        assert_eq!(read.place(&children, &my_r), Place::Behind(w1.clone()));
        let children = names(&[&r2, &my_r]);
        assert_eq!(read.place(&children, &my_r), Place::Holds);
        let children = names(&[&w1, &r2, &my_w]);
        assert_eq!(write.place(&children, &my_w), Place::Behind(r2.clone()));
        // kazoo's Lock does not wait for readers.
        assert_eq!(lock.place(&children, &my_w), Place::Behind(w1));
        assert_eq!(lock.place(&names(&[&r2]), &my_w), Place::Missing);
    }

    #[test]
    fn curator_sorts_by_the_text_after_the_lock_name() {
        let id = uuid::Uuid::nil();
        let mutex = Rule::new(LockLayout::Curator, LockMode::Exclusive, id);
        let read = Rule::new(LockLayout::Curator, LockMode::Read, id);
        let write = Rule::new(LockLayout::Curator, LockMode::Write, id);
        let other = "_c_8b8a2d6e-8a7e-4b7c-9c5e-3d2f1a0b9c8d";
        let m1 = format!("{other}-lock-0000000001");
        let mine = format!("{}0000000002", mutex.prefix);
        assert_eq!(mutex.place(&names(&[&mine, &m1]), &mine), Place::Behind(m1));
        assert_eq!(mutex.place(&names(&[&mine]), &mine), Place::Holds);

        let w1 = format!("{other}-__WRIT__0000000001");
        let w3 = format!("{other}-__WRIT__0000000003");
        let r2 = format!("{other}-__READ__0000000002");
        let my_r = format!("{}0000000004", read.prefix);
        let my_w = format!("{}0000000004", write.prefix);
        // A reader waits for the first writer before it.
        assert_eq!(read.place(&names(&[&w3, &my_r, &r2, &w1]), &my_r), Place::Behind(w1.clone()));
        assert_eq!(read.place(&names(&[&r2, &my_r]), &my_r), Place::Holds);
        // ... whoever holds it: there is no reentrancy, not even for a
        // writer of the same registry.
        assert_eq!(read.place(&names(&[&w1, &my_r]), &my_r), Place::Behind(w1.clone()));
        // A writer waits for the node just before it, reader or writer.
        assert_eq!(write.place(&names(&[&w3, &my_w, &r2, &w1]), &my_w), Place::Behind(w3));
        assert_eq!(write.place(&names(&[&r2]), &my_w), Place::Missing);
    }

    #[test]
    fn a_foreign_node_is_named() {
        let rule = Rule::new(LockLayout::Curator, LockMode::Exclusive, uuid::Uuid::nil());
        assert_eq!(rule.foreign(&names(&[&format!("{H}__lock__0000000001")])), Some(KAZOO));
        assert_eq!(rule.foreign(&names(&[&format!("_c_{U}-lock-0000000001"), "x"])), None);
        let rw = Rule::new(LockLayout::Curator, LockMode::Read, uuid::Uuid::nil());
        assert_eq!(rw.foreign(&names(&[&format!("_c_{U}-lock-0000000001")])), Some(CURATOR_MUTEX));
    }
}
