//! The node layouts and modes of `ndsr lock --layout/--mode`.

use super::*;

/// The node layouts of `lock --layout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LockLayoutArg {
    /// kazoo's `Semaphore` (the Python original's `get_lock`): up to --simultaneous holders.
    Semaphore,
    /// kazoo's `Lock`, `ReadLock`, `WriteLock`: `<uuid hex>__lock__<seq>` (readers `__rlock__`).
    Kazoo,
    /// Curator's `InterProcessMutex` (`_c_<uuid>-lock-<seq>`) and `InterProcessReadWriteLock`
    /// (`_c_<uuid>-__READ__<seq>`, `_c_<uuid>-__WRIT__<seq>`).
    Curator,
}

impl From<LockLayoutArg> for ndsr::lock::LockLayout {
    fn from(layout: LockLayoutArg) -> ndsr::lock::LockLayout {
        match layout {
            LockLayoutArg::Semaphore => ndsr::lock::LockLayout::Semaphore,
            LockLayoutArg::Kazoo => ndsr::lock::LockLayout::Kazoo,
            LockLayoutArg::Curator => ndsr::lock::LockLayout::Curator,
        }
    }
}

/// The modes of `lock --mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LockModeArg {
    /// One holder.
    Exclusive,
    /// A reader: shares the lock with readers, waits for earlier writers (kazoo, curator).
    Read,
    /// A writer: waits for every earlier reader and writer (kazoo, curator).
    Write,
}

impl From<LockModeArg> for ndsr::lock::LockMode {
    fn from(mode: LockModeArg) -> ndsr::lock::LockMode {
        match mode {
            LockModeArg::Exclusive => ndsr::lock::LockMode::Exclusive,
            LockModeArg::Read => ndsr::lock::LockMode::Read,
            LockModeArg::Write => ndsr::lock::LockMode::Write,
        }
    }
}
