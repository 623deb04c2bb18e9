//! Registering and listing instances of any format on a [`Registry`].

use std::sync::Arc;

use super::kept::{Kept, KeptList};
use super::{CuratorInstance, Format, Instances, NerveInstance, ServerSetMember, ServiceType};
use crate::path::{join, validate_path};
use crate::{Error, Registry, Result, Snapshot};

fn check_name(what: &'static str, name: &str) -> Result<()> {
    if name.is_empty() || name.contains('/') {
        return Err(Error::InvalidPath { path: name.to_string(), reason: what });
    }
    Ok(())
}

impl Registry {
    /// The instances of the service directory `dir`, decoded in `format`
    /// (or the one its children show). The directory and its children are
    /// watched and cached from then on (under the directory's one watch),
    /// so later calls read memory; the decoded list is kept with the cache
    /// too, and a later call decodes only the children that changed since
    /// (nothing, when nothing did). A child that is not a valid instance is
    /// reported in [`Instances::bad`], never fails the list; a missing
    /// directory has no instances.
    ///
    /// # Errors
    /// As [`get`](Self::get) for the directory.
    ///
    /// # Cancellation safety
    /// Cancel-safe: it only reads (and keeps the paths watched).
    pub async fn instances(&self, dir: &str, format: Option<Format>) -> Result<Instances> {
        let snapshot = self.get(dir).await?;
        let cache = &self.shared().cache;
        // Not in the cache: a snapshot saved in the cache file, read
        // before connecting.
        let Some((generation, listing, kept)) = cache.derived(dir) else {
            return self.decode_instances(dir, &snapshot, format).await;
        };
        let kept = kept.and_then(|k| k.downcast::<Kept>().ok());
        let base = kept.as_ref().and_then(|k| k.get(format));
        if let Some(list) = base.filter(|list| list.generation == generation) {
            return Ok(list.to_instances(&snapshot.path, snapshot.is_stale()));
        }
        let mut children = cache.children(dir, &listing.children);
        // Children never read yet: read (and watch) them, a bounded number
        // at a time.
        let unread: Vec<usize> = (0..children.len()).filter(|i| children[*i].is_none()).collect();
        let mut unreadable = Vec::new();
        let names = &listing.children;
        for chunk in unread.chunks(1024) {
            let reads = chunk.iter().map(|i| async move {
                let name = &names[*i];
                (*i, name, self.get(&join(dir, name)).await)
            });
            for (i, name, child) in futures::future::join_all(reads).await {
                match child {
                    Ok(child) => children[i] = Some(child),
                    Err(e) => unreadable.push(super::BadChild { key: name.clone(), reason: e.to_string() }),
                }
            }
        }
        let list = KeptList::update(base.map(|b| &**b), generation, listing.clone(), &children, format);
        let mut instances = list.to_instances(&snapshot.path, snapshot.is_stale());
        if unreadable.is_empty() {
            let list = Arc::new(list);
            cache.keep(dir, |current| {
                let kept = match current.and_then(|c| c.downcast_ref::<Kept>()) {
                    Some(kept) => kept.with(list),
                    None => Kept::default().with(list),
                };
                Some(Arc::new(kept))
            });
        }
        instances.bad.extend(unreadable);
        Ok(instances)
    }

    /// The instances of `dir` (whose snapshot is `snapshot`), every child
    /// read and decoded.
    async fn decode_instances(
        &self,
        dir: &str,
        snapshot: &Snapshot,
        format: Option<Format>,
    ) -> Result<Instances> {
        let mut children = Vec::with_capacity(snapshot.children.len());
        // A bounded number of first reads at a time.
        for chunk in snapshot.children.chunks(1024) {
            let reads = chunk.iter().map(|name| async move {
                let child = self.get(&join(dir, name)).await;
                (name.as_str(), child)
            });
            children.extend(futures::future::join_all(reads).await);
        }
        let mut read: Vec<(&str, Arc<Snapshot>)> = Vec::with_capacity(children.len());
        let mut unreadable = Vec::new();
        for (name, child) in children {
            match child {
                Ok(child) => read.push((name, child)),
                Err(e) => unreadable.push(super::BadChild { key: name.to_string(), reason: e.to_string() }),
            }
        }
        let mut instances = Instances::decode(snapshot, read.iter().map(|(n, s)| (*n, &**s)), format);
        instances.bad.extend(unreadable);
        Ok(instances)
    }

    /// Registers `instance` as Curator's `ServiceDiscovery` does, at
    /// `<base>/<name>/<id>`, with Curator's exact bytes, and keeps it
    /// registered (see [`set_node`](Self::set_node)). Unlike Curator, a
    /// reconnect never deletes and re-creates it (CURATOR-320), and a
    /// `DYNAMIC_SEQUENTIAL` instance never gets a second node. A zero
    /// `registration_time_utc` is set to now. Returns the node's path.
    ///
    /// # Errors
    /// [`Error::FormatConflict`] when the service directory holds another
    /// format; [`Error::InvalidPath`] for an empty name or id or one with
    /// `/`; [`Error::InvalidArgument`] for `STATIC`/`PERMANENT`; as
    /// [`set_node`](Self::set_node) otherwise.
    ///
    /// # Cancellation safety
    /// As [`set_node`](Self::set_node); a `DYNAMIC_SEQUENTIAL` node created
    /// before the cancellation stays registered.
    pub async fn announce_curator(&self, base: &str, instance: &CuratorInstance) -> Result<String> {
        validate_path(base)?;
        check_name("a Curator service name must be a single path segment", &instance.name)?;
        check_name("a Curator instance id must be a single path segment", &instance.id)?;
        let dir = join(base, &instance.name);
        self.refuse_other_format(&dir, Format::Curator).await?;
        let mut instance = instance.clone();
        if instance.registration_time_utc == 0 {
            instance.registration_time_utc = chrono::Utc::now().timestamp_millis();
        }
        let path = join(&dir, &instance.id);
        match instance.service_type {
            ServiceType::Dynamic => self.set_node_raw(&path, instance.encode()).await.map(|()| path),
            ServiceType::DynamicSequential => {
                self.register_sequential("announce", &path, instance.encode()).await
            }
            _ => Err(Error::InvalidArgument(
                "only DYNAMIC and DYNAMIC_SEQUENTIAL Curator instances are announced",
            )),
        }
    }

    /// Joins the ServerSet at `dir` with `member` (a `member_<seq>` node,
    /// the Java writer's bytes) and keeps it joined: a reconnect finds it,
    /// an expiry re-creates it under the same name. Returns the node's path.
    ///
    /// # Errors
    /// As [`announce_curator`](Self::announce_curator).
    ///
    /// # Cancellation safety
    /// A node created before the cancellation stays registered.
    pub async fn announce_serverset(&self, dir: &str, member: &ServerSetMember) -> Result<String> {
        validate_path(dir)?;
        self.refuse_other_format(dir, Format::ServerSet).await?;
        self.register_sequential("announce", &join(dir, "member_"), member.encode()).await
    }

    /// Registers `instance` as nerve does, at `<dir>/<name>_<seq>` (with
    /// `path_encoding`, `<dir>/base64_<len>_<data>_<seq>`), and keeps it
    /// registered. Keep `dir`'s own data empty: synapse reads it as its
    /// configuration. Returns the node's path.
    ///
    /// # Errors
    /// As [`announce_curator`](Self::announce_curator); also
    /// [`Error::InvalidArgument`] when path encoding would exceed nerve's
    /// limit.
    ///
    /// # Cancellation safety
    /// A node created before the cancellation stays registered.
    pub async fn announce_nerve(
        &self,
        dir: &str,
        instance: &NerveInstance,
        path_encoding: bool,
    ) -> Result<String> {
        validate_path(dir)?;
        check_name("a nerve instance name must be a single path segment", &instance.name)?;
        self.refuse_other_format(dir, Format::Nerve).await?;
        let prefix = if path_encoding {
            instance
                .encoded_prefix()
                .ok_or(Error::InvalidArgument("the instance is too large to encode in its name"))?
        } else {
            format!("{}_", instance.name)
        };
        self.register_sequential("announce", &join(dir, &prefix), instance.encode()).await
    }

    /// Refuses to register `writing` into a directory whose children are in
    /// another format. Reads (without watching) up to 16 of the directory's
    /// children until one says which format it is.
    async fn refuse_other_format(&self, dir: &str, writing: Format) -> Result<()> {
        let deadline = tokio::time::Instant::now() + self.connect_timeout();
        loop {
            match self.check_format(dir, writing).await {
                Err(Error::NoConnection(_)) if tokio::time::Instant::now() < deadline => continue,
                other => return other,
            }
        }
    }

    async fn check_format(&self, dir: &str, writing: Format) -> Result<()> {
        let listing = self.read(dir).await?;
        // A few children are enough: a directory holds one format.
        for name in listing.children.iter().take(16) {
            let child = match self.read(&join(dir, name)).await {
                Ok(child) => child,
                Err(e) if e.is_no_node() => continue,
                Err(e) => return Err(e),
            };
            let empty = crate::Object::new();
            if let Some(found) = super::looks_like(name, child.data.as_ref().unwrap_or(&empty)) {
                if found != writing {
                    return Err(Error::FormatConflict { path: dir.to_string(), found, writing });
                }
                return Ok(());
            }
        }
        Ok(())
    }
}
