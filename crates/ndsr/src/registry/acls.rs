//! A node's ACL read and set, with its ACL version (`aversion`), for
//! configuration as code (`ndsr export --acls`, `ndsr apply`).

use super::Registry;
use crate::acl::Acl;
use crate::path::validate_path;
use crate::snapshot::Stat;
use crate::{Error, Result};

impl Registry {
    /// The ACL of `path` as ZooKeeper stores it (its entries in order) and
    /// the node's stat (`stat.aversion` is the ACL's version); `None` when
    /// there is no node. Reads once, without a watch.
    ///
    /// # Errors
    /// [`Error::InvalidPath`], [`Error::NoConnection`],
    /// [`Error::NotAuthorized`] (ZooKeeper asks for READ or ADMIN on the node).
    pub async fn read_acl(&self, path: &str) -> Result<Option<(Vec<Acl>, Stat)>> {
        validate_path(path)?;
        let client = self.shared.lease(self.deadline()).await?.client;
        match self.shared.call("get_acl", path, client.get_acl(path)).await {
            Ok((acl, stat)) => Ok(Some((acl, Stat::from(&stat)))),
            Err(e) if e.is_no_node() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sets the ACL of `path` if its ACL version is still `expected_aversion`
    /// (`-1`: whatever it is); returns the node's stat after. ZooKeeper
    /// cannot set an ACL inside a `multi`, so this is a call of its own.
    ///
    /// # Errors
    /// - [`Error::VersionConflict`] when the ACL changed since
    ///   `expected_aversion` (`expected` and `current` are ACL versions;
    ///   `current: None` when the node is gone): nothing was set.
    /// - [`Error::InvalidArgument`] for an empty ACL; [`Error::ZooKeeper`]
    ///   with `InvalidAcl` for one ZooKeeper refuses (an unknown scheme, a
    ///   malformed id).
    /// - [`Error::NotAuthorized`] without ADMIN on the node;
    ///   [`Error::ReadOnly`], [`Error::InvalidPath`], [`Error::NoConnection`].
    pub async fn set_acl(&self, path: &str, acl: &[Acl], expected_aversion: i32) -> Result<Stat> {
        self.check_writable("set_acl")?;
        validate_path(path)?;
        if acl.is_empty() {
            return Err(Error::InvalidArgument("an ACL needs at least one entry"));
        }
        let client = self.shared.lease(self.deadline()).await?.client;
        let expected = (expected_aversion >= 0).then_some(expected_aversion);
        match self.shared.call("set_acl", path, client.set_acl(path, acl, expected)).await {
            Ok(stat) => Ok(Stat::from(&stat)),
            Err(Error::ZooKeeper { source: zookeeper_client::Error::BadVersion, .. }) => {
                let current = self.read_acl(path).await?.map(|(_, stat)| stat.aversion);
                Err(Error::VersionConflict { path: path.to_string(), expected: expected_aversion, current })
            }
            Err(e) if e.is_no_node() && expected.is_some() => Err(Error::VersionConflict {
                path: path.to_string(),
                expected: expected_aversion,
                current: None,
            }),
            Err(e) => Err(e),
        }
    }
}
