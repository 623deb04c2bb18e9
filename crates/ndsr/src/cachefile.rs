//! The on-disk cache: snapshots saved for a cold start while ZooKeeper is
//! down.
//!
//! # Format
//!
//! One JSON document, versioned and independent of Rust's types:
//!
//! ```json
//! {"format": "ndsr-cache", "version": 1,
//!  "entries": {"/services/web": {"saved_at_ms": 1764000000000,
//!     "data": null, "stat": {...}, "children": ["10.0.0.1:80"]}},
//!  "configs": {"/config/web": {"saved_at_ms": 1764000000000,
//!     "version": 7, "value": "{\"pool\": 20}"}}}
//! ```
//!
//! `configs` holds the last *good* value of each typed configuration
//! ([`Registry::config`](crate::Registry::config)): the one its type and
//! checks accepted, not the node's latest. Readers of an older ndsr ignore
//! it (and drop it when they rewrite the file).
//!
//! # Notable behaviors
//! - Saves are debounced (every change marks the file dirty; a save runs
//!   at most every 500 ms) and atomic: a temp file in the same directory,
//!   mode 0600, written, fsynced, then renamed over the file. A reader never
//!   sees a partial file.
//! - Several processes may share one file: each save takes an exclusive
//!   `flock` on `<file>.lock`, re-reads the file and merges its own entries
//!   over the others'.
//! - Entries older than the configured maximum age are dropped.
//! - A missing, corrupt, truncated, unreadable or unwritable file is a
//!   logged warning; the registry works without it.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::codec::Object;
use crate::snapshot::{Freshness, Snapshot, Stat};

/// The `format` field of a cache file.
pub const FORMAT: &str = "ndsr-cache";
/// The `version` field this ndsr writes and reads.
pub const VERSION: u32 = 1;

/// How long after a change the file is written.
pub(crate) const DEBOUNCE: Duration = Duration::from_millis(500);

#[derive(Serialize, Deserialize)]
struct Contents {
    format: String,
    version: u32,
    entries: BTreeMap<String, Entry>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    configs: BTreeMap<String, GoodConfig>,
}

/// The last good value of a typed configuration.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct GoodConfig {
    pub(crate) saved_at_ms: u64,
    /// The live node's version it was read at.
    pub(crate) version: i32,
    /// The zxid of the write that made it: of two saves, the later write
    /// wins, whatever order the saves ran in.
    #[serde(default)]
    pub(crate) mzxid: i64,
    /// Its exact text.
    pub(crate) value: String,
}

#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Entry {
    saved_at_ms: u64,
    data: Option<Object>,
    stat: Option<Stat>,
    children: Vec<String>,
}

/// A cache file: what was loaded at start, and how to save.
pub(crate) struct CacheFile {
    path: PathBuf,
    max_age: Duration,
    loaded: HashMap<String, Entry>,
    configs: HashMap<String, GoodConfig>,
    last_error: Mutex<Option<String>>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl CacheFile {
    /// Loads `path` (a warning if it cannot be read or parsed).
    pub(crate) fn open(path: &Path, max_age: Duration) -> CacheFile {
        let (loaded, configs) = match read_contents(path, max_age) {
            Ok(c) => (c.entries.into_iter().collect(), c.configs.into_iter().collect()),
            Err(why) => {
                tracing::warn!(file = %path.display(), "ignoring the cache file: {why}");
                (HashMap::new(), HashMap::new())
            }
        };
        CacheFile { path: path.to_path_buf(), max_age, loaded, configs, last_error: Mutex::new(None) }
    }

    /// The saved snapshot of `path`, marked stale since it was saved.
    pub(crate) fn lookup(&self, path: &str) -> Option<Snapshot> {
        let entry = self.loaded.get(path)?;
        Some(Snapshot {
            path: path.into(),
            data: entry.data.clone(),
            stat: entry.stat,
            children: entry.children.clone(),
            freshness: Freshness::Stale { since: UNIX_EPOCH + Duration::from_millis(entry.saved_at_ms) },
        })
    }

    /// The last good value of the typed configuration at `path`, as loaded.
    pub(crate) fn lookup_config(&self, path: &str) -> Option<GoodConfig> {
        self.configs.get(path).cloned()
    }

    /// Merges `snapshots` into the file. Blocking: run it off the runtime.
    pub(crate) fn save(&self, snapshots: &[Arc<Snapshot>]) {
        let saved_at_ms = now_ms();
        self.merge(|contents| {
            for s in snapshots {
                let entry =
                    Entry { saved_at_ms, data: s.data.clone(), stat: s.stat, children: s.children.clone() };
                contents.entries.insert(s.path.to_string(), entry);
            }
        });
    }

    /// Merges the last good value of the typed configuration at `path`
    /// into the file. Blocking: run it off the runtime.
    pub(crate) fn save_config(&self, path: &str, version: i32, mzxid: i64, value: String) {
        let saved_at_ms = now_ms();
        self.merge(|contents| {
            if contents.configs.get(path).is_none_or(|saved| saved.mzxid <= mzxid) {
                contents.configs.insert(path.to_string(), GoodConfig { saved_at_ms, version, mzxid, value });
            }
        });
    }

    fn merge(&self, update: impl FnOnce(&mut Contents)) {
        let result = self.try_merge(update);
        let mut last = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(()) => {
                if last.take().is_some() {
                    tracing::info!(file = %self.path.display(), "cache file written again");
                }
            }
            // Warn once per distinct problem, not on every change.
            Err(why) => {
                if last.as_deref() != Some(why.as_str()) {
                    tracing::warn!(file = %self.path.display(), "cannot write the cache file: {why}");
                    *last = Some(why);
                }
            }
        }
    }

    fn try_merge(&self, update: impl FnOnce(&mut Contents)) -> Result<(), String> {
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let lock_path = {
            let mut name = self.path.file_name().unwrap_or_default().to_os_string();
            name.push(".lock");
            dir.join(name)
        };
        let lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| format!("opening {}: {e}", lock_path.display()))?;
        let _guard = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| format!("locking {}: {e}", lock_path.display()))?;
        // Other processes' entries survive; a corrupt file is replaced.
        let mut contents = read_contents(&self.path, self.max_age).unwrap_or_else(|_| Contents {
            format: FORMAT.into(),
            version: VERSION,
            entries: BTreeMap::new(),
            configs: BTreeMap::new(),
        });
        update(&mut contents);
        let json = serde_json::to_vec(&contents).map_err(|e| e.to_string())?;
        // tempfile creates the file with mode 0600.
        let mut tmp = tempfile::NamedTempFile::new_in(&dir)
            .map_err(|e| format!("creating a temp file in {}: {e}", dir.display()))?;
        tmp.write_all(&json).map_err(|e| format!("writing: {e}"))?;
        tmp.as_file().sync_all().map_err(|e| format!("fsync: {e}"))?;
        tmp.persist(&self.path).map_err(|e| format!("renaming into place: {}", e.error))?;
        Ok(())
    }
}

/// Reads and validates a cache file, dropping entries older than `max_age`.
#[cfg(test)]
pub(crate) fn read(path: &Path, max_age: Duration) -> Result<BTreeMap<String, Entry>, String> {
    read_contents(path, max_age).map(|c| c.entries)
}

fn read_contents(path: &Path, max_age: Duration) -> Result<Contents, String> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Contents {
                format: FORMAT.into(),
                version: VERSION,
                entries: BTreeMap::new(),
                configs: BTreeMap::new(),
            })
        }
        Err(e) => return Err(format!("cannot read it: {e}")),
    };
    let contents: Contents = serde_json::from_slice(&bytes).map_err(|e| format!("not a cache file ({e})"))?;
    if contents.format != FORMAT || contents.version != VERSION {
        return Err(format!(
            "format {} version {} is not {FORMAT} version {VERSION}",
            contents.format, contents.version
        ));
    }
    let oldest = now_ms().saturating_sub(max_age.as_millis() as u64);
    let mut contents = contents;
    contents.entries.retain(|_, e| e.saved_at_ms >= oldest);
    contents.configs.retain(|_, c| c.saved_at_ms >= oldest);
    Ok(contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(path: &str, children: &[&str]) -> Arc<Snapshot> {
        let mut s = Snapshot::missing(path);
        s.children = children.iter().map(|c| c.to_string()).collect();
        Arc::new(s)
    }

    #[test]
    fn a_good_config_value_survives_snapshot_saves_and_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        let file = CacheFile::open(&path, Duration::from_secs(3600));
        file.save_config("/config/web", 4, 40, "{\"pool\": 3}".into());
        // An older write saved later does not replace it.
        file.save_config("/config/web", 3, 30, "{\"pool\": 2}".into());
        file.save(&[snapshot("/services/web", &["a"])]);
        let reopened = CacheFile::open(&path, Duration::from_secs(3600));
        let good = reopened.lookup_config("/config/web").expect("kept across a snapshot save");
        assert_eq!((good.version, good.value.as_str()), (4, "{\"pool\": 3}"));
        assert!(reopened.lookup("/services/web").is_some());
        assert!(reopened.lookup_config("/config/other").is_none());
    }

    #[test]
    fn saves_atomically_and_loads_back_stale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        let file = CacheFile::open(&path, Duration::from_secs(60));
        file.save(&[snapshot("/a", &["x"])]);
        let reopened = CacheFile::open(&path, Duration::from_secs(60));
        let s = reopened.lookup("/a").unwrap();
        assert_eq!(s.children, ["x"]);
        assert!(s.is_stale());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn processes_sharing_a_file_keep_each_others_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        CacheFile::open(&path, Duration::from_secs(60)).save(&[snapshot("/a", &[])]);
        CacheFile::open(&path, Duration::from_secs(60)).save(&[snapshot("/b", &[])]);
        let both = CacheFile::open(&path, Duration::from_secs(60));
        assert!(both.lookup("/a").is_some() && both.lookup("/b").is_some());
    }

    #[test]
    fn corrupt_truncated_and_foreign_files_are_ignored_then_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        for junk in [
            &b"\x00\xffgarbage"[..],
            b"{\"format\":\"ndsr-cache\",\"vers",
            b"{\"format\":\"other\",\"version\":1,\"entries\":{}}",
        ] {
            std::fs::write(&path, junk).unwrap();
            let file = CacheFile::open(&path, Duration::from_secs(60));
            assert!(file.lookup("/a").is_none());
            file.save(&[snapshot("/a", &[])]);
            assert!(CacheFile::open(&path, Duration::from_secs(60)).lookup("/a").is_some());
        }
    }

    #[test]
    fn an_unwritable_file_is_a_warning() {
        let file = CacheFile::open(Path::new("/proc/ndsr-no-such-dir/cache.json"), Duration::from_secs(60));
        file.save(&[snapshot("/a", &[])]); // must not panic
        assert!(file.last_error.lock().unwrap().is_some());
    }

    #[test]
    fn old_entries_expire() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        CacheFile::open(&path, Duration::from_secs(60)).save(&[snapshot("/a", &[])]);
        assert!(CacheFile::open(&path, Duration::from_secs(60)).lookup("/a").is_some());
        // Backdate the entry to 1970.
        let text =
            std::fs::read_to_string(&path).unwrap().replace("\"saved_at_ms\":", "\"saved_at_ms\":1,\"x\":");
        std::fs::write(&path, text).unwrap();
        assert!(CacheFile::open(&path, Duration::from_secs(60)).lookup("/a").is_none());
    }
}
