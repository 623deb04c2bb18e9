//! Configuration releases and typed configuration, blocking (see
//! [`crate::release`]).

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::{refuse_inside_a_runtime, Registry, Runtime};
use crate::release::{
    Applied, Canary, CanaryRule, CanaryStatus, Change, ConfigStatus, History, HistoryItem, PublishOptions,
    Release, SchemaChange, SchemaInfo,
};
use crate::Result;

impl Registry {
    /// [`crate::Registry::publish`], blocking.
    ///
    /// # Errors
    /// As [`crate::Registry::publish`].
    pub fn publish(&self, path: &str, value: &[u8], options: PublishOptions) -> Result<Release> {
        self.block(self.inner.publish(path, value, options))
    }

    /// [`crate::Registry::publish_value`], blocking.
    ///
    /// # Errors
    /// As [`crate::Registry::publish`].
    pub fn publish_value(
        &self,
        path: &str,
        value: &serde_json::Value,
        options: PublishOptions,
    ) -> Result<Release> {
        self.block(self.inner.publish_value(path, value, options))
    }

    /// [`crate::Registry::history`], blocking.
    ///
    /// # Errors
    /// As [`crate::Registry::history`].
    pub fn history(&self, path: &str) -> Result<History> {
        self.block(self.inner.history(path))
    }

    /// [`crate::Registry::rollback`], blocking.
    ///
    /// # Errors
    /// As [`crate::Registry::rollback`].
    pub fn rollback(&self, path: &str, to_version: i32, options: PublishOptions) -> Result<Release> {
        self.block(self.inner.rollback(path, to_version, options))
    }

    /// As [`crate::Registry::identity`].
    pub fn identity(&self) -> String {
        self.inner.identity()
    }

    /// As [`crate::Registry::labels`].
    pub fn labels(&self) -> &std::collections::BTreeMap<String, String> {
        self.inner.labels()
    }

    /// As [`crate::Registry::picked_by`].
    pub fn picked_by(&self, canary: &Canary) -> bool {
        self.inner.picked_by(canary)
    }

    /// As [`crate::Registry::canary_node`].
    pub fn canary_node(&self, path: &str) -> String {
        self.inner.canary_node(path)
    }

    /// [`crate::Registry::start_canary`], blocking.
    ///
    /// # Errors
    /// As [`crate::Registry::start_canary`].
    pub fn start_canary(
        &self,
        path: &str,
        value: &[u8],
        rule: CanaryRule,
        options: PublishOptions,
    ) -> Result<Canary> {
        self.block(self.inner.start_canary(path, value, rule, options))
    }

    /// [`crate::Registry::canary`], blocking.
    ///
    /// # Errors
    /// As [`crate::Registry::canary`].
    pub fn canary(&self, path: &str) -> Result<Option<Canary>> {
        self.block(self.inner.canary(path))
    }

    /// [`crate::Registry::promote_canary`], blocking.
    ///
    /// # Errors
    /// As [`crate::Registry::promote_canary`].
    pub fn promote_canary(&self, path: &str, options: PublishOptions) -> Result<Release> {
        self.block(self.inner.promote_canary(path, options))
    }

    /// [`crate::Registry::abort_canary`], blocking.
    ///
    /// # Errors
    /// As [`crate::Registry::abort_canary`].
    pub fn abort_canary(&self, path: &str) -> Result<bool> {
        self.block(self.inner.abort_canary(path))
    }

    /// [`crate::Registry::canary_status`], blocking.
    ///
    /// # Errors
    /// As [`crate::Registry::canary_status`].
    pub fn canary_status(&self, path: &str) -> Result<CanaryStatus> {
        self.block(self.inner.canary_status(path))
    }

    /// [`crate::Registry::config_diff`], blocking.
    ///
    /// # Errors
    /// As [`crate::Registry::config_diff`].
    pub fn config_diff(&self, path: &str, from: Option<i32>, to: Option<i32>) -> Result<Vec<Change>> {
        self.block(self.inner.config_diff(path, from, to))
    }

    /// [`crate::Registry::schema`], blocking.
    ///
    /// # Errors
    /// As [`crate::Registry::schema`].
    pub fn schema(&self, path: &str) -> Result<Option<SchemaInfo>> {
        self.block(self.inner.schema(path))
    }

    /// [`crate::Registry::set_schema`], blocking.
    ///
    /// # Errors
    /// As [`crate::Registry::set_schema`].
    pub fn set_schema(&self, path: &str, schema: &serde_json::Value, force: bool) -> Result<SchemaChange> {
        self.block(self.inner.set_schema(path, schema, force))
    }

    /// [`crate::Registry::remove_schema`], blocking.
    ///
    /// # Errors
    /// As [`crate::Registry::remove_schema`].
    pub fn remove_schema(&self, path: &str) -> Result<SchemaChange> {
        self.block(self.inner.remove_schema(path))
    }

    /// [`crate::Registry::validate_config`], blocking.
    ///
    /// # Errors
    /// As [`crate::Registry::validate_config`].
    pub fn validate_config(&self, path: &str, value: &[u8]) -> Result<()> {
        self.block(self.inner.validate_config(path, value))
    }

    /// [`crate::Registry::releases`], as a blocking iterator.
    ///
    /// # Errors
    /// As [`crate::Registry::releases`].
    pub fn releases(&self, path: &str, since: Option<i32>) -> Result<Releases> {
        Ok(Releases { inner: self.inner.releases(path, since)?, runtime: self.runtime.clone() })
    }

    /// [`crate::Registry::config`], blocking: set it up, then
    /// [`build`](ConfigBuilder::build).
    ///
    /// ```no_run
    /// # fn demo(registry: ndsr::blocking::Registry) -> ndsr::Result<()> {
    /// #[derive(serde::Deserialize)]
    /// struct Web { pool: u32 }
    /// let web = registry.config::<Web>("/config/web").build()?;
    /// println!("pool {}", web.get().pool);
    /// # Ok(()) }
    /// ```
    pub fn config<T>(&self, path: &str) -> ConfigBuilder<T>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        ConfigBuilder { inner: self.inner.config(path), registry: self.clone() }
    }
}

/// A typed configuration being set up, blocking (see [`Registry::config`]).
pub struct ConfigBuilder<T> {
    inner: crate::release::ConfigBuilder<T>,
    registry: Registry,
}

impl<T> ConfigBuilder<T>
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    /// As [`crate::release::ConfigBuilder::default_value`].
    pub fn default_value(self, value: T) -> Self {
        ConfigBuilder { inner: self.inner.default_value(value), registry: self.registry }
    }

    /// As [`crate::release::ConfigBuilder::validate`].
    pub fn validate<F, E>(self, check: F) -> Self
    where
        F: Fn(&T) -> std::result::Result<(), E> + Send + Sync + 'static,
        E: std::fmt::Display,
    {
        ConfigBuilder { inner: self.inner.validate(check), registry: self.registry }
    }

    /// As [`crate::release::ConfigBuilder::build`], blocking.
    ///
    /// # Errors
    /// As [`crate::release::ConfigBuilder::build`].
    pub fn build(self) -> Result<Config<T>> {
        let inner = self.registry.block(self.inner.build())?;
        Ok(Config { inner, runtime: self.registry.runtime.clone() })
    }
}

/// A typed configuration, blocking: see [`crate::release::Config`].
pub struct Config<T> {
    inner: crate::release::Config<T>,
    runtime: Arc<Runtime>,
}

impl<T> Config<T> {
    /// The last good value, from memory.
    pub fn get(&self) -> Arc<T> {
        self.inner.get()
    }

    /// As [`crate::release::Config::status`].
    pub fn status(&self) -> ConfigStatus {
        self.inner.status()
    }

    /// As [`crate::release::Config::applied`].
    pub fn applied(&self) -> Applied {
        self.inner.applied()
    }

    /// As [`crate::release::Config::refuse_if`].
    pub fn refuse_if(&self, judged: &Arc<T>, reasons: Vec<String>) -> bool {
        self.inner.refuse_if(judged, reasons)
    }

    /// As [`crate::release::Config::version`].
    pub fn version(&self) -> Option<i32> {
        self.inner.version()
    }

    /// As [`crate::release::Config::rejected`].
    pub fn rejected(&self) -> u64 {
        self.inner.rejected()
    }

    /// The good values from now on, as a blocking iterator.
    pub fn changes(&self) -> ConfigChanges<T> {
        ConfigChanges { inner: self.inner.changes(), runtime: self.runtime.clone() }
    }
}

/// The good values of a [`Config`], blocking: an iterator that ends when
/// the registry closes.
pub struct ConfigChanges<T> {
    inner: crate::release::ConfigChanges<T>,
    runtime: Arc<Runtime>,
}

impl<T> Iterator for ConfigChanges<T> {
    type Item = Arc<T>;

    fn next(&mut self) -> Option<Arc<T>> {
        refuse_inside_a_runtime().ok()?;
        self.runtime.handle().block_on(self.inner.next())
    }
}

impl<T> ConfigChanges<T> {
    /// The next good value, or `None` after `timeout` or once closed.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Arc<T>> {
        refuse_inside_a_runtime().ok()?;
        let inner = &mut self.inner;
        self.runtime
            .handle()
            .block_on(async { tokio::time::timeout(timeout, inner.next()).await.ok().flatten() })
    }
}

/// The releases of a path, blocking (see [`crate::Registry::releases`]):
/// an iterator that ends when the registry closes.
pub struct Releases {
    inner: crate::release::Releases,
    runtime: Arc<Runtime>,
}

impl Iterator for Releases {
    type Item = Result<HistoryItem>;

    fn next(&mut self) -> Option<Result<HistoryItem>> {
        refuse_inside_a_runtime().ok()?;
        self.runtime.handle().block_on(self.inner.next())
    }
}

impl Releases {
    /// The next item, or `None` after `timeout` or once closed.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<HistoryItem>> {
        refuse_inside_a_runtime().ok()?;
        let inner = &mut self.inner;
        self.runtime
            .handle()
            .block_on(async { tokio::time::timeout(timeout, inner.next()).await.ok().flatten() })
    }
}
