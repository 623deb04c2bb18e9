//! Reading a configuration path's history: its releases in order, the
//! versions written outside ndsr (gaps, said plainly), and entries that
//! were tampered with (said, never trusted).

use futures::StreamExt;
use serde::Serialize;
use zookeeper_client::Client;

use super::{sha256_hex, Header, Layout, Operation, ENTRY_FORMAT};
use crate::session::Shared;
use crate::Result;

/// One recorded release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The entry's node name (`r-0000000007`), in the order written.
    pub name: String,
    /// What the release did.
    pub op: Operation,
    /// The live node's version that held the value.
    pub version: i32,
    /// The version it replaced (`None`: the release created the node).
    pub previous_version: Option<i32>,
    /// SHA-256 of the value, in hex (checked when read).
    pub sha256: String,
    /// Who published it (as the publisher said).
    pub author: String,
    /// The publisher's host.
    pub host: String,
    /// When, RFC 3339 in UTC.
    pub time: String,
    /// Why.
    pub message: String,
    /// The schema's version it was checked against (`None`: no schema).
    pub schema_version: Option<i32>,
    /// For a rollback, the version it restored.
    pub rollback_of: Option<i32>,
    /// The value's exact bytes.
    #[serde(skip)]
    pub value: Vec<u8>,
    /// Is this the value the live node holds now?
    pub live: bool,
    /// The czxid of the live node it was written to: the same for every
    /// release of one life of the node, another after a re-creation.
    pub node_czxid: i64,
    /// The entry's own czxid: when it was recorded (entries are in this
    /// order, even across a re-creation of the history).
    pub czxid: i64,
}

impl Entry {
    /// Did this release create the node (so no version came before it)?
    pub fn created_node(&self) -> bool {
        self.previous_version.is_none() && self.op != Operation::External
    }

    /// The value as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.value).ok()
    }
}

/// Why some versions of the live node have no release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GapReason {
    /// Written by a client other than ndsr (the original, zkCli, kazoo)
    /// between releases, or after the last one: certain.
    External,
    /// Older than the oldest entry kept: removed beyond `history_keep`, or
    /// written before ndsr recorded the path.
    NotRetained,
}

/// One item of a history, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HistoryItem {
    /// A release.
    Release(Entry),
    /// Versions `from..=to` of the live node whose values were not recorded.
    Gap {
        /// The first version missing.
        from: i32,
        /// The last version missing.
        to: i32,
        /// Why.
        reason: GapReason,
    },
    /// The live node was deleted and created again (by another client)
    /// before the releases that follow: versions start again from 0.
    Recreated,
    /// An entry that is not what ndsr wrote: rewritten, its bytes no longer
    /// matching their SHA-256, or not an entry at all. Never used for a
    /// rollback.
    Tampered {
        /// The node's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A configuration path's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct History {
    /// The configuration path.
    pub path: String,
    /// The live node's version (`None`: it does not exist).
    pub live_version: Option<i32>,
    /// Releases, gaps and tampered entries, oldest first.
    pub items: Vec<HistoryItem>,
    /// The live node's czxid (its present life), if it exists.
    #[serde(skip)]
    pub live_czxid: Option<i64>,
}

impl History {
    /// The releases, oldest first.
    pub fn releases(&self) -> impl Iterator<Item = &Entry> {
        self.items.iter().filter_map(|i| match i {
            HistoryItem::Release(e) => Some(e),
            _ => None,
        })
    }

    /// The release that wrote `version`, in the node's present life if it
    /// has one there, else the newest.
    pub fn release(&self, version: i32) -> Option<&Entry> {
        let life = self.releases().last().map(|e| e.node_czxid);
        let of = |e: &&Entry| e.version == version;
        self.releases()
            .filter(of)
            .filter(|e| Some(e.node_czxid) == life)
            .last()
            .or_else(|| self.releases().filter(of).last())
    }

    /// The versions the history holds releases of, oldest first.
    pub fn versions(&self) -> Vec<i32> {
        self.releases().map(|e| e.version).collect()
    }

    /// Each item as a line: a release's version, operation, author, time
    /// and message; a gap's versions and why, said plainly.
    pub fn describe(&self, item: &HistoryItem) -> String {
        let path = &self.path;
        let range = |from: i32, to: i32| {
            if from == to {
                format!("version {from}")
            } else {
                format!("versions {from}-{to}")
            }
        };
        match item {
            HistoryItem::Release(e) => {
                let live = if e.live { " (live)" } else { "" };
                let of = e.rollback_of.map(|v| format!(" to version {v}")).unwrap_or_default();
                format!(
                    "version {}{live}: {}{of} by {}@{} at {}: {}",
                    e.version, e.op, e.author, e.host, e.time, e.message
                )
            }
            HistoryItem::Gap { from, to, reason: GapReason::External } => {
                let (r, were) = (range(*from, *to), if from == to { "was" } else { "were" });
                let its = if from == to { "its value was" } else { "their values were" };
                format!("{r} of {path} {were} written outside ndsr; {its} not recorded")
            }
            HistoryItem::Gap { from, to, reason: GapReason::NotRetained } => format!(
                "{} of {path} not in the history (older than the oldest release kept, or written before ndsr recorded it)",
                range(*from, *to)
            ),
            HistoryItem::Recreated => format!("{path} was deleted and created again outside ndsr"),
            HistoryItem::Tampered { name, reason } => format!("entry {name} is not trusted: {reason}"),
        }
    }
}

/// A history entry as read: name, bytes, data version and czxid.
pub(crate) struct RawEntry {
    pub(crate) name: String,
    pub(crate) bytes: Vec<u8>,
    pub(crate) version: i32,
    pub(crate) czxid: i64,
}

/// The live node as read: its version and the czxid of its life.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Live {
    pub(crate) version: i32,
    pub(crate) czxid: i64,
}

/// Parses one entry, or says why it is not trusted.
fn parse(path: &str, raw: &RawEntry, live: Option<Live>) -> std::result::Result<Entry, String> {
    if !raw.name.starts_with("r-") || raw.name[2..].parse::<u64>().is_err() {
        return Err("not a history entry (its name is not r-<sequence>)".into());
    }
    if raw.version != 0 {
        return Err(format!("rewritten after it was recorded (its data version is {})", raw.version));
    }
    let split = raw.bytes.iter().position(|&b| b == b'\n').ok_or("not an ndsr history entry (no header)")?;
    let header: Header = serde_json::from_slice(&raw.bytes[..split])
        .map_err(|e| format!("not an ndsr history entry (its header: {e})"))?;
    if header.format != ENTRY_FORMAT {
        return Err(format!("not an ndsr history entry (format {:?})", header.format));
    }
    if header.path != path {
        return Err(format!("it records another path ({})", header.path));
    }
    let value = raw.bytes[split + 1..].to_vec();
    if sha256_hex(&value) != header.sha256 || value.len() != header.size {
        return Err("its value no longer matches its SHA-256".into());
    }
    // Created in the same transaction as the node when it has no czxid.
    let node_czxid = header.node_czxid.unwrap_or(raw.czxid);
    Ok(Entry {
        name: raw.name.clone(),
        op: header.op,
        version: header.version,
        previous_version: header.from_version,
        sha256: header.sha256,
        author: header.author,
        host: header.host,
        time: header.time,
        message: header.message,
        schema_version: header.schema_version,
        rollback_of: header.rollback_of,
        value,
        // The live node is at the entry's version, in the entry's life.
        live: live.is_some_and(|l| l.version == header.version && l.czxid == node_czxid),
        node_czxid,
        czxid: raw.czxid,
    })
}

/// Orders the entries and finds the gaps between them and the live node.
pub(crate) fn analyse(path: &str, mut raw: Vec<RawEntry>, live: Option<Live>) -> History {
    // The order written: by zxid (names restart if the history node is
    // made again), then by name.
    raw.sort_by(|a, b| (a.czxid, &a.name).cmp(&(b.czxid, &b.name)));
    let mut items = Vec::new();
    let mut last: Option<(i64, i32)> = None;
    for r in &raw {
        let entry = match parse(path, r, live) {
            Ok(entry) => entry,
            Err(reason) => {
                items.push(HistoryItem::Tampered { name: r.name.clone(), reason });
                continue;
            }
        };
        match last {
            // (Not a guard on the version too: a next version in the same
            // life must not fall through to the re-creation arm.)
            Some((life, v)) if life == entry.node_czxid => {
                items.extend(
                    (entry.version > v + 1).then(|| gap(v + 1, entry.version - 1, GapReason::External)),
                );
            }
            Some(_) => {
                items.push(HistoryItem::Recreated);
                if entry.version > 0 && !entry.created_node() {
                    items.push(gap(0, entry.version - 1, GapReason::External));
                }
            }
            None if entry.version > 0 && !entry.created_node() => {
                items.push(gap(0, entry.version - 1, GapReason::NotRetained));
            }
            None => {}
        }
        last = Some((entry.node_czxid, entry.version));
        items.push(HistoryItem::Release(entry));
    }
    if let Some(live) = live {
        match last {
            Some((life, v)) if life == live.czxid => {
                items.extend((live.version > v).then(|| gap(v + 1, live.version, GapReason::External)));
            }
            Some(_) => {
                items.push(HistoryItem::Recreated);
                items.push(gap(0, live.version, GapReason::External));
            }
            None => items.push(gap(0, live.version, GapReason::NotRetained)),
        }
    }
    History {
        path: path.to_string(),
        live_version: live.map(|l| l.version),
        items,
        live_czxid: live.map(|l| l.czxid),
    }
}

fn gap(from: i32, to: i32, reason: GapReason) -> HistoryItem {
    HistoryItem::Gap { from, to, reason }
}

/// Reads the live node and every entry of `path`'s history (entries are
/// read a few dozen at a time, pipelined, never in one response).
pub(crate) async fn read(shared: &Shared, client: &Client, layout: &Layout, path: &str) -> Result<History> {
    let (live, names) = tokio::join!(
        shared.call("get_data", path, client.get_data(path)),
        shared.call("get_children", &layout.history, client.list_children(&layout.history)),
    );
    let live = match live {
        Ok((_, stat)) => Some(Live { version: stat.version, czxid: stat.czxid }),
        Err(e) if e.is_no_node() => None,
        Err(e) => return Err(e),
    };
    let names = match names {
        Ok(names) => names,
        Err(e) if e.is_no_node() => Vec::new(),
        Err(e) => return Err(e),
    };
    let reads = futures::stream::iter(names.into_iter().map(|name| async move {
        let node = format!("{}/{name}", layout.history);
        match shared.call("get_data", &node, client.get_data(&node)).await {
            Ok((bytes, stat)) => Ok(Some(RawEntry { name, bytes, version: stat.version, czxid: stat.czxid })),
            // Removed as the oldest meanwhile.
            Err(e) if e.is_no_node() => Ok(None),
            Err(e) => Err(e),
        }
    }))
    .buffered(32)
    .collect::<Vec<_>>()
    .await;
    let mut raw = Vec::with_capacity(reads.len());
    for read in reads {
        raw.extend(read?);
    }
    Ok(analyse(path, raw, live))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u32, version: i32, from: Option<i32>, node_czxid: i64, czxid: i64) -> RawEntry {
        let value = format!("{{\"v\":{version}}}").into_bytes();
        let header = Header {
            format: ENTRY_FORMAT.into(),
            v: 1,
            path: "/c".into(),
            op: Operation::Publish,
            version,
            from_version: from,
            node_czxid: Some(node_czxid),
            sha256: sha256_hex(&value),
            size: value.len(),
            author: "a".into(),
            host: "h".into(),
            time: "t".into(),
            message: "m".into(),
            schema_version: None,
            rollback_of: None,
        };
        let mut bytes = serde_json::to_vec(&header).unwrap();
        bytes.push(b'\n');
        bytes.extend(value);
        RawEntry { name: format!("r-{seq:010}"), bytes, version: 0, czxid }
    }

    fn lines(h: &History) -> Vec<String> {
        h.items.iter().filter(|i| !matches!(i, HistoryItem::Release(_))).map(|i| h.describe(i)).collect()
    }

    #[test]
    fn versions_written_outside_ndsr_show_as_gaps_said_plainly() {
        let live = Live { version: 9, czxid: 100 };
        let raw =
            vec![entry(2, 6, Some(5), 100, 160), entry(1, 0, None, 100, 100), entry(3, 7, Some(6), 100, 170)];
        let h = analyse("/c", raw, Some(live));
        assert_eq!(h.versions(), [0, 6, 7]);
        assert_eq!(
            lines(&h),
            [
                "versions 1-5 of /c were written outside ndsr; their values were not recorded",
                "versions 8-9 of /c were written outside ndsr; their values were not recorded",
            ]
        );
        assert!(!h.releases().any(|e| e.live));
    }

    #[test]
    fn the_live_release_is_marked_and_a_pruned_start_is_not_a_gap() {
        let live = Live { version: 7, czxid: 100 };
        let h =
            analyse("/c", vec![entry(5, 6, Some(5), 100, 160), entry(6, 7, Some(6), 100, 170)], Some(live));
        assert_eq!(lines(&h).len(), 1);
        assert!(lines(&h)[0].contains("versions 0-5 of /c not in the history"), "{:?}", lines(&h));
        assert!(h.release(7).unwrap().live);
        assert!(!h.release(6).unwrap().live);
    }

    #[test]
    fn tampered_entries_are_said_and_never_trusted() {
        let live = Live { version: 1, czxid: 100 };
        let mut changed = entry(2, 1, Some(0), 100, 110);
        let at = changed.bytes.len() - 2;
        changed.bytes[at] = b'9';
        let mut rewritten = entry(3, 2, Some(1), 100, 120);
        rewritten.version = 1;
        let stray = RawEntry { name: "x".into(), bytes: vec![], version: 0, czxid: 1 };
        let h = analyse("/c", vec![entry(1, 0, None, 100, 100), changed, rewritten, stray], Some(live));
        assert_eq!(h.versions(), [0]);
        let reasons: Vec<String> = h
            .items
            .iter()
            .filter_map(|i| match i {
                HistoryItem::Tampered { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(reasons[0].contains("not a history entry"), "{reasons:?}");
        assert!(reasons[1].contains("SHA-256"));
        assert!(reasons[2].contains("rewritten"));
        assert!(h.release(1).is_none());
    }

    #[test]
    fn a_recreation_outside_ndsr_starts_versions_again() {
        let live = Live { version: 2, czxid: 300 };
        let h = analyse("/c", vec![entry(1, 0, None, 100, 100), entry(2, 1, Some(0), 300, 310)], Some(live));
        assert_eq!(
            lines(&h),
            [
                "/c was deleted and created again outside ndsr",
                "version 0 of /c was written outside ndsr; its value was not recorded",
                "version 2 of /c was written outside ndsr; its value was not recorded",
            ]
        );
    }
}
