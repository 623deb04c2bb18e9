//! A service directory's instances kept decoded beside the cache, so that
//! [`Registry::instances`](crate::Registry::instances) answers from memory
//! without decoding anything while nothing changed, and decodes only the
//! children that changed when something did.
//!
//! The list is kept with the directory's cache entry (it goes when the
//! directory is unwatched), one per format asked for, together with the
//! cache generation it reflects: the cache moves a directory's generation
//! on whenever its snapshot or a child's changes. Each child is remembered
//! by the identity of the snapshot it was decoded from (a weak pointer:
//! the cache holds the data, not this list), so finding what changed is a
//! pointer comparison per child.

use std::sync::{Arc, Weak};

use super::{decode_child, looks_like, BadChild, Decoded, Format, Instance, Instances};
use crate::{Object, Snapshot};

/// The lists kept for one directory, one per format asked for.
#[derive(Default)]
pub(crate) struct Kept {
    lists: Vec<Arc<KeptList>>,
}

impl Kept {
    /// The list kept for `asked`, if any.
    pub(crate) fn get(&self, asked: Option<Format>) -> Option<&Arc<KeptList>> {
        self.lists.iter().find(|l| l.asked == asked)
    }

    /// These lists with `list` in place of the one for its format, unless
    /// that one is newer.
    pub(crate) fn with(&self, list: Arc<KeptList>) -> Kept {
        let mut lists = self.lists.clone();
        match lists.iter_mut().find(|l| l.asked == list.asked) {
            Some(kept) if kept.generation < list.generation => *kept = list,
            Some(_) => {}
            None => lists.push(list),
        }
        Kept { lists }
    }
}

/// One child as last decoded.
#[derive(Clone)]
struct KeptChild {
    /// The snapshot it was read from, by identity only; `None` when it
    /// could not be read.
    seen: Option<Weak<Snapshot>>,
    /// Whether the node existed.
    exists: bool,
    /// The format its node name and data show.
    looks: Option<Format>,
    /// What decoding it gave, in which format.
    decoded: Option<(Format, Kind)>,
}

/// [`Decoded`], shareable.
#[derive(Clone)]
enum Kind {
    Instance(Arc<Instance>),
    Other,
    Bad(String),
}

/// A directory's instances, decoded, with what they were decoded from.
pub(crate) struct KeptList {
    /// The cache generation of the directory this reflects.
    pub(crate) generation: u64,
    /// The format asked for (`None`: detected).
    asked: Option<Format>,
    /// The directory's snapshot: its children's names.
    dir: Arc<Snapshot>,
    /// One per name in `dir.children`.
    children: Vec<KeptChild>,
    /// The format read.
    format: Option<Format>,
    /// The instances, as [`Instances::instances`].
    instances: Vec<Arc<Instance>>,
    /// The bad children, as [`Instances::bad`].
    bad: Vec<BadChild>,
}

impl KeptList {
    /// The list as [`Instances`] for the directory at `path`.
    pub(crate) fn to_instances(&self, path: &str, stale: bool) -> Instances {
        Instances {
            path: path.to_string(),
            format: self.format,
            instances: self.instances.clone(),
            bad: self.bad.clone(),
            stale,
        }
    }

    /// The list for `dir` whose children's snapshots are `children` (one
    /// per name in `dir.children`; `None`: unreadable, left out), decoded
    /// in `asked` or the detected format, from `base`: a child whose
    /// snapshot is the one `base` decoded (or whose data is the same) is
    /// not decoded again. Gives what [`Instances::decode`] gives.
    pub(crate) fn update(
        base: Option<&KeptList>,
        generation: u64,
        dir: Arc<Snapshot>,
        children: &[Option<Arc<Snapshot>>],
        asked: Option<Format>,
    ) -> KeptList {
        let empty = Object::new();
        let names = &dir.children;
        // The children as `base` last saw them, matched by name (both
        // listings are sorted; a listing that is not only costs decoding).
        let mut previous = base.map(|b| b.dir.children.iter().zip(&b.children).peekable());
        let mut kept = Vec::with_capacity(names.len());
        for (name, snapshot) in names.iter().zip(children) {
            let mut before = None;
            if let Some(previous) = previous.as_mut() {
                while let Some((_, _)) = previous.next_if(|(n, _)| n.as_str() < name.as_str()) {}
                before = previous.next_if(|(n, _)| *n == name).map(|(_, c)| c);
            }
            kept.push(child(name, snapshot.as_ref(), before, &empty));
        }
        let data = |i: usize| children[i].as_ref().and_then(|s| s.data.as_ref()).unwrap_or(&empty);
        let format = asked.or_else(|| kept.iter().find_map(|c| c.looks.filter(|_| c.exists)));
        let mut instances = Vec::new();
        let mut bad = Vec::new();
        if let Some(format) = format {
            for (i, (name, child)) in names.iter().zip(kept.iter_mut()).enumerate() {
                if !child.exists {
                    continue;
                }
                let kind = match &child.decoded {
                    Some((f, kind)) if *f == format => kind.clone(),
                    _ => {
                        let kind = match decode_child(format, name, data(i)) {
                            Decoded::Instance(instance) => Kind::Instance(Arc::new(*instance)),
                            Decoded::Other => Kind::Other,
                            Decoded::Bad(reason) => Kind::Bad(reason),
                        };
                        child.decoded = Some((format, kind.clone()));
                        kind
                    }
                };
                match kind {
                    Kind::Instance(instance) => instances.push(instance),
                    Kind::Other => {}
                    Kind::Bad(reason) => bad.push(BadChild { key: name.clone(), reason }),
                }
            }
        }
        if format == Some(Format::ServerSet) {
            let read: Vec<(&str, &Object)> = names
                .iter()
                .zip(&kept)
                .enumerate()
                .filter(|(_, (_, c))| c.exists)
                .map(|(i, (name, _))| (name.as_str(), data(i)))
                .collect();
            instances = super::serverset::weigh(&read, instances);
        }
        instances.sort_by(|a, b| a.key.cmp(&b.key));
        KeptList { generation, asked, dir, children: kept, format, instances, bad }
    }
}

/// One child as kept: `before`'s decoding when it was decoded from the
/// same snapshot (or from the same data), otherwise to be decoded.
fn child(
    name: &str,
    snapshot: Option<&Arc<Snapshot>>,
    before: Option<&KeptChild>,
    empty: &Object,
) -> KeptChild {
    let Some(snapshot) = snapshot else {
        return KeptChild { seen: None, exists: false, looks: None, decoded: None };
    };
    let same =
        |c: &&KeptChild| c.seen.as_ref().is_some_and(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(snapshot)));
    if let Some(before) = before.filter(same) {
        return before.clone();
    }
    let exists = snapshot.exists();
    let data = snapshot.data.as_ref().unwrap_or(empty);
    // An instance decodes from its name and data alone: the same data (a
    // write of the same bytes, a new stat) keeps the decoded instance.
    let decoded = before
        .and_then(|b| b.decoded.clone())
        .filter(|(_, kind)| exists && matches!(kind, Kind::Instance(i) if i.data == *data));
    KeptChild {
        seen: Some(Arc::downgrade(snapshot)),
        exists,
        looks: if exists { looks_like(name, data) } else { None },
        decoded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{prop_assert_eq, proptest, ProptestConfig, Strategy as _};
    use std::collections::BTreeMap;

    const NAMES: [&str; 8] = [
        "10.0.0.1:80",
        "base64_1_x_0000000001",
        "i-1",
        "i-2",
        "member_0000000001",
        "member_0000000002",
        "vector_0000000003",
        "web_0000000004",
    ];

    const DATA: [&str; 12] = [
        r#"{"name":"web","id":"i-1","address":"10.0.0.1","port":8080,"serviceType":"DYNAMIC","registrationTimeUTC":1}"#,
        r#"{"address":"10.0.0.2","serviceType":"dynamic"}"#,
        r#"{"serviceEndpoint":{"host":"10.0.0.3","port":80},"additionalEndpoints":{},"status":"ALIVE","shard":1}"#,
        r#"{"serviceEndpoint":{"host":"bad host","port":80},"additionalEndpoints":{},"status":"ALIVE"}"#,
        r#"{"vector":[{"select":"member=member_0000000001","weight":0.5},{"select":"shard=1","weight":2}]}"#,
        r#"{"vector":[{"select":"member=member_0000000002","weight":-1}]}"#,
        r#"{"host":"10.0.0.4","port":8080,"name":"web","weight":3}"#,
        r#"{"host":"10.0.0.5","port":0,"name":"web"}"#,
        r#"{"pid":1,"created":"2026-01-01 00:00:00"}"#,
        r#"{"pid":2,"created":"2026-01-01 00:00:00","zone":"a"}"#,
        r#"{"string_value":"not json"}"#,
        r#"{}"#,
    ];

    /// An existing node at `path` holding `data`, at `version` (the
    /// discovery tests' fixture).
    fn node(path: &str, data: &str, version: i32) -> Arc<Snapshot> {
        let mut snapshot = crate::discovery::tests::existing(path, data);
        if let Some(stat) = &mut snapshot.stat {
            stat.version = version;
        }
        Arc::new(snapshot)
    }

    /// What one step does to a child.
    #[derive(Clone, Debug)]
    enum Step {
        /// Creates or rewrites it with one of `DATA`.
        Write(usize, usize),
        /// Publishes it again with the same data and a new version.
        Touch(usize),
        /// Deletes it (gone from the listing).
        Remove(usize),
        /// Deleted but still listed (its snapshot says missing).
        Vanish(usize),
        /// Unreadable (not in the cache).
        Unread(usize),
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        (0..5usize, 0..NAMES.len(), 0..DATA.len()).prop_map(|(kind, n, d)| match kind {
            0 | 1 => Step::Write(n, d),
            2 => Step::Touch(n),
            3 => Step::Remove(n),
            _ if d % 2 == 0 => Step::Vanish(n),
            _ => Step::Unread(n),
        })
    }

    fn assert_same(kept: &Instances, full: &Instances) {
        assert_eq!(kept.format, full.format);
        assert_eq!(kept.instances, full.instances);
        assert_eq!(kept.bad, full.bad);
        assert_eq!((kept.path.as_str(), kept.stale), (full.path.as_str(), full.stale));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// After any sequence of adds, changes and removes, the list kept
        /// up to date is the list decoded from scratch, in every format,
        /// and an unchanged child keeps its decoded instance.
        #[test]
        fn the_kept_list_is_always_the_full_decoding(
            steps in proptest::collection::vec(proptest::collection::vec(step(), 1..4), 1..24),
            asked in proptest::option::of(0..4usize),
        ) {
            let asked = asked.map(|f| [Format::Curator, Format::ServerSet, Format::Nerve, Format::Nd][f]);
            // name -> snapshot (None: listed but unreadable)
            let mut nodes: BTreeMap<&str, Option<Arc<Snapshot>>> = BTreeMap::new();
            let mut kept: Option<KeptList> = None;
            for (generation, batch) in steps.iter().enumerate() {
                for step in batch {
                    match *step {
                        Step::Write(n, d) => {
                            nodes.insert(NAMES[n], Some(node(&format!("/s/{}", NAMES[n]), DATA[d], generation as i32)));
                        }
                        Step::Touch(n) => {
                            if let Some(Some(old)) = nodes.get(NAMES[n]).filter(|s| s.as_ref().is_some_and(|s| s.exists())) {
                                let data = serde_json::to_string(old.data.as_ref().unwrap()).unwrap();
                                nodes.insert(NAMES[n], Some(node(&old.path, &data, generation as i32 + 1000)));
                            }
                        }
                        Step::Remove(n) => {
                            nodes.remove(NAMES[n]);
                        }
                        Step::Vanish(n) => {
                            nodes.insert(NAMES[n], Some(Arc::new(Snapshot::missing(&format!("/s/{}", NAMES[n])))));
                        }
                        Step::Unread(n) => {
                            nodes.insert(NAMES[n], None);
                        }
                    }
                }
                let mut dir = Snapshot::missing("/s");
                dir.children = nodes.keys().map(|n| n.to_string()).collect();
                let dir = Arc::new(dir);
                let children: Vec<Option<Arc<Snapshot>>> = nodes.values().cloned().collect();
                let before = kept.take();
                let list = KeptList::update(before.as_ref(), generation as u64, dir.clone(), &children, asked);
                let read = nodes.iter().filter_map(|(n, s)| s.as_ref().map(|s| (*n, &**s)));
                let full = Instances::decode(&dir, read, asked);
                assert_same(&list.to_instances("/s", false), &full);
                // A child whose snapshot did not change keeps its instance.
                if let Some(before) = &before {
                    // (ServerSet weights make new instances.)
                    let same: Vec<_> = list.instances.iter().filter(|i| i.format != Format::ServerSet).filter(|i| {
                        before.instances.iter().any(|b| b.key == i.key && b.format == i.format && b.data == i.data && b.weight == i.weight)
                    }).collect();
                    for instance in same {
                        let old = before.instances.iter().find(|b| b.key == instance.key).unwrap();
                        prop_assert_eq!(Arc::ptr_eq(old, instance), true, "{} decoded again", instance.key);
                    }
                }
                kept = Some(list);
            }
        }
    }

    #[test]
    fn nothing_is_decoded_again_while_nothing_changed() {
        let names = ["i-1", "i-2"];
        let children: Vec<_> = names.iter().map(|n| Some(node(&format!("/s/{n}"), DATA[0], 0))).collect();
        let mut dir = Snapshot::missing("/s");
        dir.children = names.iter().map(|n| n.to_string()).collect();
        let dir = Arc::new(dir);
        let first = KeptList::update(None, 1, dir.clone(), &children, None);
        let second = KeptList::update(Some(&first), 2, dir.clone(), &children, None);
        assert_eq!(second.instances.len(), 2);
        assert!(first.instances.iter().zip(&second.instances).all(|(a, b)| Arc::ptr_eq(a, b)));
        // A new detected format decodes everything again.
        let nerve: Vec<_> = names.iter().map(|n| Some(node(&format!("/s/{n}"), DATA[6], 0))).collect();
        let third = KeptList::update(Some(&second), 3, dir, &nerve, None);
        assert_eq!(third.format, Some(Format::Nerve));
        assert!(third.instances.iter().all(|i| i.format == Format::Nerve));
    }
}
