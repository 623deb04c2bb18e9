//! Digest credentials and the ACLs given to the nodes ndsr creates.

use base64::Engine;
use sha1::{Digest, Sha1};
pub use zookeeper_client::{Acl, AuthId, Permission};

/// A username and password for ZooKeeper's `digest` scheme. The password
/// never appears in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub(crate) username: String,
    pub(crate) password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// Credentials for `username` with `password`.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials { username: username.into(), password: password.into() }
    }

    /// The bytes `addauth digest` sends: `user:password`.
    pub(crate) fn auth_bytes(&self) -> Vec<u8> {
        format!("{}:{}", self.username, self.password).into_bytes()
    }

    /// The ACL id of these credentials: `user:base64(sha1(user:password))`,
    /// as ZooKeeper's `DigestAuthenticationProvider` and kazoo's
    /// `make_digest_acl` compute it.
    pub fn digest_id(&self) -> String {
        let hash = Sha1::digest(self.auth_bytes());
        format!("{}:{}", self.username, base64::engine::general_purpose::STANDARD.encode(hash))
    }
}

/// The default ACL of created nodes: with credentials, `digest` ALL for
/// them and `world:anyone` READ (as the original); without, `world:anyone`
/// ALL.
pub(crate) fn default_acl(credentials: Option<&Credentials>) -> Vec<Acl> {
    match credentials {
        Some(c) => vec![
            Acl::new(Permission::ALL, AuthId::new("digest", &c.digest_id())),
            Acl::new(Permission::READ, AuthId::anyone()),
        ],
        None => vec![Acl::new(Permission::ALL, AuthId::anyone())],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_zookeeper() {
        // From ZooKeeper's DigestAuthenticationProvider for super:secret
        // (`java -cp zookeeper.jar org.apache.zookeeper.server.auth.DigestAuthenticationProvider super:secret`).
        let c = Credentials::new("super", "secret");
        assert_eq!(c.digest_id(), "super:lK75jTNcA+U9vtVEw5vB51mj/w4=");
    }

    #[test]
    fn debug_hides_the_password() {
        let c = Credentials::new("user", "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
