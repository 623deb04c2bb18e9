//! ACLs in tree files and plans: a node's `acl` is a list of entries
//! `{perms: rwcda, scheme: world, id: anyone}`, the perms letters those of
//! zkCli's `getAcl` (r read, w write, c create, d delete, a admin), always
//! written in that order.

use ndsr::acl::{Acl, AuthId, Permission};

use super::*;

/// The perms letters and what each grants.
const LETTERS: [(char, Permission); 5] = [
    ('r', Permission::READ),
    ('w', Permission::WRITE),
    ('c', Permission::CREATE),
    ('d', Permission::DELETE),
    ('a', Permission::ADMIN),
];

/// An ACL entry as a file writes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    perms: String,
    scheme: String,
    id: String,
}

/// The entry, or what is wrong with it.
fn entry(e: Entry) -> Result<Acl, String> {
    let mut perms = Permission::NONE;
    for letter in e.perms.chars() {
        match LETTERS.iter().find(|(l, _)| *l == letter) {
            Some((_, p)) => perms = perms | *p,
            None => {
                return Err(format!("perms {:?}: {letter:?} is not one of r w c d a", e.perms));
            }
        }
    }
    if e.scheme.is_empty() || e.id.is_empty() {
        return Err("scheme and id must not be empty".into());
    }
    if e.scheme == "auth" {
        // ZooKeeper stores `auth` as the creator's own ids: the live ACL
        // would never match the file, and every apply would set it again.
        return Err(
            "the auth scheme is stored as the creator's ids; give the digest (or sasl) id itself".into()
        );
    }
    if e.scheme == "world" && e.id != "anyone" {
        return Err(format!("the world scheme's only id is anyone, not {:?}", e.id));
    }
    if e.scheme == "digest" && e.id.split(':').filter(|s| !s.is_empty()).count() != 2 {
        return Err(format!("a digest id is user:base64(sha1(user:password)), not {:?}", e.id));
    }
    if e.scheme == "digest" && e.id.ends_with(":x") {
        return Err(format!(
            "{:?} is a hidden digest (ZooKeeper shows user:x to a client without ADMIN on the node)",
            e.id
        ));
    }
    Ok(Acl::new(perms, AuthId::new(&e.scheme, &e.id)))
}

/// Reads an `acl` list: at least one entry, each checked (a mistake named
/// with the entry's place in the list).
pub(super) fn acl_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Acl>>, D::Error> {
    let entries = Vec::<Entry>::deserialize(d)?;
    if entries.is_empty() {
        return Err(de::Error::custom("acl: an ACL needs at least one entry"));
    }
    let mut acl = Vec::with_capacity(entries.len());
    for (i, e) in entries.into_iter().enumerate() {
        acl.push(entry(e).map_err(|e| de::Error::custom(format!("acl entry {}: {e}", i + 1)))?);
    }
    Ok(Some(acl))
}

/// The letters of `perms`, in the order r w c d a.
fn letters(perms: Permission) -> String {
    LETTERS.iter().filter(|(_, p)| perms.has(*p)).map(|(l, _)| *l).collect()
}

/// `acl` as a file writes it.
pub(super) fn to_value(acl: &[Acl]) -> Value {
    let entries = acl
        .iter()
        .map(|a| json!({"perms": letters(a.permission()), "scheme": a.scheme(), "id": a.id()}))
        .collect();
    Value::Array(entries)
}

/// `world:anyone rwcda, digest:bob:… r`: for plans and messages.
pub(super) fn show(acl: &[Acl]) -> String {
    let entries: Vec<String> =
        acl.iter().map(|a| format!("{}:{} {}", a.scheme(), a.id(), letters(a.permission()))).collect();
    entries.join(", ")
}

/// Whether a live entry is a digest whose hash ZooKeeper hid: it shows
/// `user:x` to a client without ADMIN on the node.
pub(super) fn hidden(a: &Acl) -> bool {
    a.scheme() == "digest" && a.id().ends_with(":x")
}

/// Whether the file's ACL grants what the live one does (the order of
/// entries aside); a hidden digest `user:x` of `live` stands for any
/// digest of that user.
pub(super) fn same(file: &[Acl], live: &[Acl]) -> bool {
    let key = |acl: &[Acl], hide: bool| {
        let mut v: Vec<(String, String, String)> = acl
            .iter()
            .map(|a| {
                let id = match a.id().split_once(':') {
                    Some((user, _)) if hide && a.scheme() == "digest" => {
                        let shown = format!("{user}:x");
                        match live.iter().any(|l| hidden(l) && l.id() == shown) {
                            true => shown,
                            false => a.id().to_string(),
                        }
                    }
                    _ => a.id().to_string(),
                };
                (a.scheme().to_string(), id, letters(a.permission()))
            })
            .collect();
        v.sort();
        v.dedup();
        v
    };
    key(file, true) == key(live, false)
}

/// Whether `acl` surely lets the applier create children: `c` for
/// world:anyone, or for the applier's digest or SASL id. (An `ip` or other
/// entry is not assumed.)
pub(super) fn lets_create(acl: &[Acl], global: &Global) -> bool {
    let digest = match (&global.username, &global.password) {
        (Some(user), Some(password)) if !global.sasl => {
            Some(ndsr::acl::Credentials::new(user.clone(), password.clone()).digest_id())
        }
        _ => None,
    };
    acl.iter().filter(|a| a.permission().has(Permission::CREATE)).any(|a| match a.scheme() {
        "world" => a.id() == "anyone",
        "digest" => digest.as_deref() == Some(a.id()),
        "sasl" => global.sasl && global.username.as_deref() == Some(a.id()),
        _ => false,
    })
}
