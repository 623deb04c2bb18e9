//! Writing a rendered file: atomically (a random temporary file created
//! exclusively, then renamed), only when its bytes change, keeping the old
//! file's owner and mode, never through a link another user could plant or
//! change, never into a directory another user could write.

use std::path::Path;

/// A template's file options (`[[template]]` `perms`, `backup`,
/// `create_dest_dirs`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Options {
    /// The file's mode; else the old file's, or 0644 for a new one.
    pub perms: Option<u32>,
    /// The replaced file is kept as `NAME.bak` (its bytes, owner and mode).
    pub backup: bool,
    /// A missing directory is made (0755); else it is an error.
    pub create_dirs: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options { perms: None, backup: false, create_dirs: true }
    }
}

/// [`write_with`] with the default options.
#[cfg(test)]
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<bool> {
    write_with(path, bytes, Options::default())
}

/// Writes `bytes` to `path` unless the file already holds them (false
/// then), by a rename of a temporary file beside it: readers see the old
/// file or the new, never half. The directory is made (0755) if missing
/// (unless `options` say not to), then checked (see `check_directory`)
/// before anything in it is read. `options.perms` sets the mode;
/// `options.backup` keeps the replaced regular file as `NAME.bak`,
/// written the same way.
///
/// The old file is read only if it is a regular file (opened without
/// following a link or blocking on a FIFO, at most one byte more than the
/// new text). Its owner and mode (without set-id bits) are kept if it is
/// the agent's user's or root's; another user's file is kept with its
/// owner too in a directory only the agent's user can write, but refused
/// in a shared (sticky) one, where that user planted it. Anything else at
/// the destination (a link, a FIFO) is replaced, not followed: 0644 and
/// the agent's user, as a new file.
///
/// The temporary file has a random name and is created exclusively: a
/// link planted in the directory is never followed.
pub(crate) fn write_with(path: &Path, bytes: &[u8], options: Options) -> std::io::Result<bool> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let parent = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let Some(file_name) = path.file_name() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} does not name a file", path.display()),
        ));
    };
    // Links on the way as written first: making missing directories and
    // resolving the path both follow them.
    check_links(parent)?;
    if options.create_dirs {
        std::fs::DirBuilder::new().recursive(true).mode(0o755).create(parent)?;
    }
    let dir = std::fs::canonicalize(parent).map_err(|e| {
        let hint = if options.create_dirs { "" } else { " (create_dest_dirs = false: make it first)" };
        std::io::Error::new(e.kind(), format!("the directory {}: {e}{hint}", parent.display()))
    })?;
    let shared = check_directory(&dir)?;
    let path = dir.join(file_name);
    let old = match std::fs::symlink_metadata(&path) {
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let me = nix::unistd::geteuid().as_raw();
    // In a shared directory, what another user owns is theirs to change.
    let foreign = |path: &Path, uid: u32| {
        let dir_mode = std::fs::symlink_metadata(&dir).map_or(0, |m| m.mode() & 0o7777);
        (shared && uid != me && uid != 0).then(|| {
            std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "refused: {} is owned by uid {uid}, another user, in a directory others can write \
                     (mode {dir_mode:04o}): that user could change the file before the command reads it; \
                     remove it, or write into a directory only the agent's user can write",
                    path.display(),
                ),
            )
        })
    };
    // The owner, group and mode kept: a regular file's.
    let mut keep = None;
    if let Some(old) = &old {
        if let Some(e) = foreign(&path, old.uid()) {
            return Err(e);
        }
        // None: replaced meanwhile by something else, which is replaced.
        if old.file_type().is_file() {
            if let Some((meta, text)) = read_regular(&path, bytes.len())? {
                if let Some(e) = foreign(&path, meta.uid()) {
                    return Err(e);
                }
                if text == bytes {
                    return Ok(false);
                }
                keep = Some((meta.uid(), meta.gid(), meta.mode() & 0o777));
            }
        }
    }
    if let (true, Some((uid, gid, mode))) = (options.backup, keep) {
        // The whole old file, read as before (it may have changed since).
        if let Some((_, old_bytes)) = read_regular(&path, usize::MAX - 1)? {
            let mut backup = file_name.to_os_string();
            backup.push(".bak");
            let backup = dir.join(backup);
            // Another user's NAME.bak is refused as the file itself is (a
            // link or anything else there is replaced, not followed).
            match std::fs::symlink_metadata(&backup) {
                Ok(meta) => {
                    if let Some(e) = foreign(&backup, meta.uid()) {
                        return Err(e);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            persist(&dir, &backup, &old_bytes, Some((uid, gid)), mode)?;
        }
    }
    let mode = options.perms.or(keep.map(|(_, _, mode)| mode)).unwrap_or(0o644);
    persist(&dir, &path, bytes, keep.map(|(uid, gid, _)| (uid, gid)), mode)?;
    Ok(true)
}

/// Writes `bytes` to a new random temporary file in `dir` (created
/// exclusively; removed on an error), with `owner` and `mode`, and
/// renames it to `path`.
fn persist(
    dir: &Path,
    path: &Path,
    bytes: &[u8],
    owner: Option<(u32, u32)>,
    mode: u32,
) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    // Removed when dropped: nothing is left behind on an error.
    let mut temp =
        tempfile::Builder::new().prefix(&format!(".{name}.")).suffix(".ndsr.tmp").tempfile_in(dir)?;
    temp.write_all(bytes)?;
    if let Some((uid, gid)) = owner {
        let new = temp.as_file().metadata()?;
        if (new.uid(), new.gid()) != (uid, gid) {
            std::os::unix::fs::fchown(temp.as_file(), Some(uid), Some(gid)).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "cannot keep {}'s owner {uid}:{gid} ({e}); the file is not written",
                        path.display()
                    ),
                )
            })?;
        }
    }
    temp.as_file().set_permissions(std::fs::Permissions::from_mode(mode))?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The regular file at `path` (opened without following a link, nor
/// blocking on a FIFO) and at most `limit + 1` of its bytes; `None` if it
/// is no longer a regular file.
fn read_regular(path: &Path, limit: usize) -> std::io::Result<Option<(std::fs::Metadata, Vec<u8>)>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)
    {
        Ok(file) => file,
        // ELOOP: a link now; ENXIO: a FIFO or socket without a writer.
        Err(e) if matches!(e.raw_os_error(), Some(nix::libc::ELOOP) | Some(nix::libc::ENXIO)) => {
            return Ok(None)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Ok(None);
    }
    let mut text = Vec::new();
    file.take(limit as u64 + 1).read_to_end(&mut text)?;
    Ok(Some((meta, text)))
}

/// Checks the links on `path` as configured (before it is resolved): a
/// link in a directory others can write must be root's or the agent's
/// user's, in a sticky directory. Else another user could plant a link
/// (say `/tmp/out -> /etc`) that sends the file wherever they like, into a
/// directory that passes every check once resolved.
fn check_links(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::geteuid().as_raw();
    let mut current = std::path::PathBuf::new();
    for component in path.components() {
        current.push(component);
        let Ok(meta) = std::fs::symlink_metadata(&current) else { return Ok(()) };
        if !meta.file_type().is_symlink() {
            continue;
        }
        let parent = current.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let mode = std::fs::metadata(parent)?.mode() & 0o7777;
        let ours = meta.uid() == 0 || meta.uid() == me;
        if mode & 0o022 != 0 && (mode & 0o1000 == 0 || !ours) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "refused: {} is a link (owner uid {}) in {}, a directory others can write (mode {mode:04o}): \
                     another user could point it anywhere; name the real directory",
                    current.display(),
                    meta.uid(),
                    parent.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Checks the directory written into (canonical), and every directory
/// above it: whether it is shared (sticky, ours, and writable by others),
/// or an error saying why it is refused.
///
/// The directory itself must not be writable by group or others, unless
/// it is sticky and owned by the agent's user (as /tmp is root's): there
/// another user could plant or replace the file we write. Each directory
/// above it that group or others can write must be sticky, and the next
/// directory down owned by root or the agent's user: else another user
/// could rename our directory away and put theirs in its place.
fn check_directory(dir: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::geteuid().as_raw();
    let refused = |why: String| {
        std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "refused: {why}, so another user could plant or replace files there; write into a \
                 directory only the agent's user can write (chmod go-w), or one that is sticky and owned \
                 by that user, under directories others cannot write"
            ),
        )
    };
    let writable_by = |mode: u32| if mode & 0o002 != 0 { "others" } else { "its group" };
    let ancestors: Vec<&Path> = dir.ancestors().collect();
    // From the root down: each directory and the one below it.
    for pair in ancestors.windows(2).rev() {
        let (child, parent) = (pair[0], pair[1]);
        let meta = std::fs::metadata(parent)?;
        let mode = meta.mode() & 0o7777;
        if mode & 0o022 == 0 {
            continue;
        }
        let child_owner = std::fs::symlink_metadata(child)?.uid();
        if mode & 0o1000 == 0 || (child_owner != 0 && child_owner != me) {
            return Err(refused(format!(
                "{} is under {}, which is writable by {} (mode {mode:04o}, owner uid {}){}",
                dir.display(),
                parent.display(),
                writable_by(mode),
                meta.uid(),
                if mode & 0o1000 == 0 {
                    String::new()
                } else {
                    format!(", and {} is owned by uid {child_owner}", child.display())
                }
            )));
        }
    }
    let meta = std::fs::metadata(dir)?;
    let mode = meta.mode() & 0o7777;
    let shared = mode & 0o022 != 0;
    let sticky = mode & 0o1000 != 0;
    if shared && !(sticky && meta.uid() == me) {
        return Err(refused(format!(
            "the directory {} is writable by {} (mode {mode:04o}, owner uid {}{})",
            dir.display(),
            writable_by(mode),
            meta.uid(),
            if sticky { format!("; the agent runs as uid {me}") } else { String::new() }
        )));
    }
    Ok(shared)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_planted_link_at_the_old_temporary_name_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let path = dir.path().join("haproxy.cfg");
        // The name the old code used, predictable from the process id.
        let old_temp = dir.path().join(format!(".haproxy.cfg.ndsr-{}.tmp", std::process::id()));
        std::os::unix::fs::symlink(&victim, &old_temp).unwrap();
        write_atomically(&path, b"rendered").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious", "the victim is unchanged");
        assert_eq!(std::fs::read(&path).unwrap(), b"rendered");
        assert!(!std::fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
        // A destination that is a link is replaced, not written through.
        let link = dir.path().join("link.cfg");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        write_atomically(&link, b"rendered").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious", "not written through a link");
        assert!(!std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    }

    #[test]
    fn a_directory_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o777, 0o775, 0o757] {
            let shared = dir.path().join(format!("shared-{mode:o}"));
            std::fs::create_dir(&shared).unwrap();
            std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(mode)).unwrap();
            let error = write_atomically(&shared.join("haproxy.cfg"), b"x").unwrap_err();
            assert!(error.to_string().contains("writable by"), "{mode:o}: {error}");
            assert_eq!(std::fs::read_dir(&shared).unwrap().count(), 0, "{mode:o}: nothing written");
        }
        // Sticky and ours (as /tmp is root's): others cannot replace our files.
        let sticky = dir.path().join("sticky");
        std::fs::create_dir(&sticky).unwrap();
        std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).unwrap();
        write_atomically(&sticky.join("haproxy.cfg"), b"x").unwrap();
    }

    #[test]
    fn the_owner_is_kept() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("haproxy.cfg");
        write_atomically(&path, b"one").unwrap();
        let me = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!((meta.uid(), meta.gid()), me, "a new file is the agent's");
        if !nix::unistd::geteuid().is_root() {
            return; // Only root can give a file to another user.
        }
        std::os::unix::fs::chown(&path, Some(4242), Some(4343)).unwrap();
        write_atomically(&path, b"two").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!((meta.uid(), meta.gid(), std::fs::read(&path).unwrap()), (4242, 4343, b"two".to_vec()));
    }

    /// Whether the tests run as root (chown to another uid needs it).
    fn root() -> bool {
        let root = nix::unistd::geteuid().is_root();
        if !root {
            println!("note: not root, the parts that give files to another uid are skipped");
        }
        root
    }

    #[test]
    fn another_users_file_in_a_shared_directory_is_refused_and_left_untouched() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        // Sticky and ours, as /tmp is a root agent's.
        let sticky = dir.path().join("sticky");
        std::fs::create_dir(&sticky).unwrap();
        std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).unwrap();
        // Our own file there is written, and keeps its mode without set-id bits.
        let ours = sticky.join("ours.cfg");
        std::fs::write(&ours, "old").unwrap();
        std::fs::set_permissions(&ours, std::fs::Permissions::from_mode(0o4750)).unwrap();
        assert!(write_atomically(&ours, b"new").unwrap());
        assert_eq!(std::fs::metadata(&ours).unwrap().mode() & 0o7777, 0o750, "no set-id bit is kept");
        if !root() {
            return;
        }
        // Issue 22 (review): a local user pre-creates the file, 0666; the
        // old code gave the rendered file to them, with their mode.
        let planted = sticky.join("haproxy.cfg");
        std::fs::write(&planted, "attacker's").unwrap();
        std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o666)).unwrap();
        std::os::unix::fs::chown(&planted, Some(4242), Some(4242)).unwrap();
        let error = write_atomically(&planted, b"rendered").unwrap_err().to_string();
        assert!(error.contains("owned by uid 4242, another user"), "{error}");
        let meta = std::fs::metadata(&planted).unwrap();
        assert_eq!(std::fs::read_to_string(&planted).unwrap(), "attacker's", "left untouched");
        assert_eq!((meta.uid(), meta.mode() & 0o777), (4242, 0o666));
        // Their link too: refused, not replaced nor followed.
        let link = sticky.join("link.cfg");
        std::os::unix::fs::symlink(&ours, &link).unwrap();
        std::os::unix::fs::lchown(&link, Some(4242), Some(4242)).unwrap();
        assert!(write_atomically(&link, b"rendered").unwrap_err().to_string().contains("another user"));
        assert_eq!(std::fs::read(&ours).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(&sticky).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 3, "no temporary file is left: {names:?}");
        // In a directory only we can write, another user's file keeps its owner.
        let private = dir.path().join("private.cfg");
        std::fs::write(&private, "old").unwrap();
        std::os::unix::fs::chown(&private, Some(4242), Some(4242)).unwrap();
        assert!(write_atomically(&private, b"new").unwrap());
        assert_eq!(std::fs::metadata(&private).unwrap().uid(), 4242);
    }

    #[test]
    fn another_users_backup_in_a_shared_directory_is_refused() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        if !root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let sticky = dir.path().join("sticky");
        std::fs::create_dir(&sticky).unwrap();
        std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let ours = sticky.join("ours.cfg");
        std::fs::write(&ours, "old").unwrap();
        let bak = sticky.join("ours.cfg.bak");
        std::fs::write(&bak, "theirs").unwrap();
        std::os::unix::fs::chown(&bak, Some(65534), Some(65534)).unwrap();
        let options = Options { backup: true, ..Options::default() };
        let error = write_with(&ours, b"new", options).unwrap_err().to_string();
        assert!(error.contains("ours.cfg.bak is owned by uid 65534, another user"), "{error}");
        assert_eq!(std::fs::read(&bak).unwrap(), b"theirs", "their backup is left untouched");
        assert_eq!(std::fs::metadata(&bak).unwrap().uid(), 65534);
        assert_eq!(std::fs::read(&ours).unwrap(), b"old", "nor is the file written");
        // Ours (or root's) is replaced.
        std::os::unix::fs::chown(&bak, Some(0), Some(0)).unwrap();
        assert!(write_with(&ours, b"new", options).unwrap());
        assert_eq!(std::fs::read(&bak).unwrap(), b"old");
    }

    #[test]
    fn a_shared_directory_not_ours_or_under_a_shared_one_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // A directory under one that others can write (0777, not sticky):
        // another user could rename ours away and put theirs in its place.
        let open = dir.path().join("open");
        std::fs::create_dir_all(open.join("sub")).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let error = write_atomically(&open.join("sub/haproxy.cfg"), b"x").unwrap_err().to_string();
        assert!(error.contains("is under") && error.contains("writable by others"), "{error}");
        assert_eq!(std::fs::read_dir(open.join("sub")).unwrap().count(), 0, "nothing written");
        // Through a link, the real directories are checked.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(open.join("sub"), &link).unwrap();
        assert!(write_atomically(&link.join("haproxy.cfg"), b"x").is_err());
        if !root() {
            return;
        }
        // Sticky but another user's (1777, uid 4242): refused.
        let theirs = dir.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o1777)).unwrap();
        std::os::unix::fs::chown(&theirs, Some(4242), Some(4242)).unwrap();
        let error = write_atomically(&theirs.join("haproxy.cfg"), b"x").unwrap_err().to_string();
        assert!(error.contains("writable by others (mode 1777, owner uid 4242"), "{error}");
        // Under a sticky directory, a directory of another user's: refused.
        let sticky = dir.path().join("sticky");
        std::fs::create_dir_all(sticky.join("sub")).unwrap();
        std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).unwrap();
        std::os::unix::fs::chown(sticky.join("sub"), Some(4242), Some(4242)).unwrap();
        let error = write_atomically(&sticky.join("sub/haproxy.cfg"), b"x").unwrap_err().to_string();
        assert!(error.contains("is owned by uid 4242"), "{error}");
        // In a sticky directory, another user's link to a directory that
        // passes every check (ours, 0755): refused, nothing written there.
        let safe = dir.path().join("safe");
        std::fs::create_dir(&safe).unwrap();
        let planted = sticky.join("out");
        std::os::unix::fs::symlink(&safe, &planted).unwrap();
        std::os::unix::fs::lchown(&planted, Some(4242), Some(4242)).unwrap();
        let error = write_atomically(&planted.join("haproxy.cfg"), b"x").unwrap_err().to_string();
        assert!(error.contains("is a link (owner uid 4242)"), "{error}");
        assert_eq!(std::fs::read_dir(&safe).unwrap().count(), 0, "nothing written through the link");
        // Our own link there is followed (only we could change it).
        std::fs::remove_file(&planted).unwrap();
        std::os::unix::fs::symlink(&safe, &planted).unwrap();
        assert!(write_atomically(&planted.join("haproxy.cfg"), b"x").unwrap());
        assert_eq!(std::fs::read(safe.join("haproxy.cfg")).unwrap(), b"x");
    }

    /// `write_atomically` in a thread, its result within 20 s (a test
    /// never hangs).
    fn write_within(path: &Path, bytes: &'static [u8]) -> std::io::Result<bool> {
        let (tx, rx) = std::sync::mpsc::channel();
        let path = path.to_path_buf();
        std::thread::spawn(move || tx.send(write_atomically(&path, bytes)));
        rx.recv_timeout(Duration::from_secs(20)).expect("the write did not return within 20 s")
    }

    #[test]
    fn a_fifo_or_a_link_to_dev_zero_at_the_destination_is_replaced_not_read() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        // Open would block forever on a FIFO without a writer.
        let fifo = dir.path().join("fifo.cfg");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(write_within(&fifo, b"rendered").unwrap());
        assert_eq!(std::fs::read(&fifo).unwrap(), b"rendered");
        // Reading /dev/zero through a link never ends (and fills memory).
        let zero = dir.path().join("zero.cfg");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        assert!(write_within(&zero, b"rendered").unwrap());
        assert_eq!(std::fs::read(&zero).unwrap(), b"rendered");
        // A link is replaced as a new file: 0644 and ours, not its target's.
        let target = dir.path().join("target");
        std::fs::write(&target, "x").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("link.cfg");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(write_within(&link, b"rendered").unwrap());
        let meta = std::fs::symlink_metadata(&link).unwrap();
        assert!(meta.file_type().is_file());
        assert_eq!((meta.mode() & 0o7777, meta.uid()), (0o644, nix::unistd::geteuid().as_raw()));
        // A file longer than the new text is read only that far, and rewritten.
        let long = dir.path().join("long.cfg");
        std::fs::write(&long, "rendered and more").unwrap();
        assert!(write_within(&long, b"rendered").unwrap());
        assert!(!write_within(&long, b"rendered").unwrap(), "the same bytes are not written again");
    }

    #[test]
    fn writes_atomically_and_keeps_the_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("haproxy.cfg");
        write_atomically(&path, b"one").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 1, "no temporary file is left: {left:?}");
        write_atomically(&dir.path().join("new/dir/file"), b"x").unwrap();
        assert_eq!(std::fs::read(dir.path().join("new/dir/file")).unwrap(), b"x");
        assert!(write_atomically(&path.join("under-a-file"), b"x").is_err());
    }

    #[test]
    fn perms_backup_and_create_dirs() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.conf");
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
        let options = Options { perms: Some(0o640), backup: true, create_dirs: true };
        assert!(write_with(&path, b"one\n", options).unwrap());
        assert_eq!(mode(&path), 0o640, "perms on a new file");
        assert!(!dir.path().join("app.conf.bak").exists(), "nothing to back up yet");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        // A link planted at the backup's name is replaced, not followed.
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, b"untouched").unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.path().join("app.conf.bak")).unwrap();
        assert!(write_with(&path, b"two\n", options).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"two\n");
        assert_eq!(mode(&path), 0o640, "perms win over the old file's mode");
        let backup = dir.path().join("app.conf.bak");
        assert!(std::fs::symlink_metadata(&backup).unwrap().file_type().is_file());
        assert_eq!(std::fs::read(&backup).unwrap(), b"one\n", "the replaced bytes");
        assert_eq!(mode(&backup), 0o600, "with the replaced file's mode");
        assert_eq!(std::fs::read(&elsewhere).unwrap(), b"untouched");
        assert!(!write_with(&path, b"two\n", options).unwrap(), "unchanged: no write, no backup");
        assert_eq!(std::fs::read(&backup).unwrap(), b"one\n");

        let missing = dir.path().join("missing/app.conf");
        let no_dirs = Options { create_dirs: false, ..Options::default() };
        let error = write_with(&missing, b"x", no_dirs).unwrap_err().to_string();
        assert!(error.contains("create_dest_dirs = false"), "{error}");
        assert!(!dir.path().join("missing").exists());
        assert!(write_with(&missing, b"x", Options::default()).unwrap());
    }
}
