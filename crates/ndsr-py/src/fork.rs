//! Refusing registries in a process forked after ZooKeeper was used.

use pyo3::prelude::*;

use crate::errors::NdsrError;

/// The process that first started a registry: the ZooKeeper client's I/O
/// reactor (async-io's, one per process: an epoll instance and a thread)
/// lives there, and a forked child inherits it half-dead: the thread is
/// gone, its lock is held for ever, and the epoll instance is shared with
/// the parent. No session can be made in such a child, so it is refused
/// with a clear error instead of timing out.
static REACTOR_OWNER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

pub(crate) fn refuse_after_fork() -> PyResult<()> {
    use std::sync::atomic::Ordering;
    let me = std::process::id();
    match REACTOR_OWNER.compare_exchange(0, me, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => Ok(()),
        Err(owner) if owner == me => Ok(()),
        Err(owner) => Err(NdsrError::new_err(format!(
            "this process was forked from process {owner}, which had already used ZooKeeper: the client's \
             I/O reactor does not survive fork(), so no registry can connect here. Create registries after \
             forking (for example in a pre-fork server's worker start hook), not before"
        ))),
    }
}

/// Was this process forked from one that had already used ZooKeeper?
#[pyfunction]
pub(crate) fn forked_after_use() -> bool {
    let owner = REACTOR_OWNER.load(std::sync::atomic::Ordering::SeqCst);
    owner != 0 && owner != std::process::id()
}
