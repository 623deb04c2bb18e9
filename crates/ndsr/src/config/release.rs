//! The builder's settings for configuration releases and canaries.

use super::RegistryBuilder;

impl RegistryBuilder {
    /// Where configuration releases keep their history and schemas (see
    /// [`Registry::publish`](crate::Registry::publish)): default `/ndsr`,
    /// under the chroot if there is one. Every client of a configuration
    /// path must use the same root to share its history. Checked when the
    /// registry is built.
    pub fn config_root(mut self, root: impl Into<String>) -> Self {
        self.config_root = root.into();
        self
    }

    /// How many releases each configuration path keeps in its history
    /// (default 100, at least 1): a publish that goes over removes the
    /// oldest in the same transaction.
    pub fn history_keep(mut self, releases: usize) -> Self {
        self.history_keep = releases.max(1);
        self
    }

    /// The author recorded with each release (default: `$USER`, else
    /// `$LOGNAME`, else `unknown`). Not authenticated: ZooKeeper's ACLs
    /// decide who may write; this says who did.
    pub fn author(mut self, author: impl Into<String>) -> Self {
        self.author = Some(author.into());
        self
    }

    /// Who this client is to configuration canaries (see
    /// [`Registry::start_canary`](crate::Registry::start_canary)): a
    /// canary by host names this one, and a percentage rollout hashes it.
    /// Default: the host name. Checked when the registry is built (not
    /// empty, at most 255 bytes, no `/` or control characters).
    pub fn identity(mut self, identity: impl Into<String>) -> Self {
        self.identity = Some(identity.into());
        self
    }

    /// A label of this client (`zone=a`), matched by a canary by labels.
    /// Checked when the registry is built (names and values without
    /// control characters).
    pub fn label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(name.into(), value.into());
        self
    }

    pub(crate) fn identity_or_default(&self) -> String {
        self.identity.clone().unwrap_or_else(|| crate::release::host_name().to_string())
    }

    pub(crate) fn author_or_default(&self) -> String {
        self.author
            .clone()
            .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
            .or_else(|| std::env::var("LOGNAME").ok().filter(|u| !u.is_empty()))
            .unwrap_or_else(|| "unknown".to_string())
    }
}
