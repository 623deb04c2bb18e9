//! `[dns]`: the DNS interface (see `crate::dns`). Absent: no DNS.

use super::*;

/// `[dns]` as the file gives it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DnsFields {
    /// UDP and TCP address (default 127.0.0.1:8600; port 0 picks one).
    #[serde(default = "default_dns_listen")]
    pub listen: SocketAddr,
    /// The domain served (default `ndsr.`).
    #[serde(default = "default_domain")]
    pub domain: String,
    /// The TTL of answers, and the SOA's minimum (negative caching), in
    /// seconds (default 0).
    #[serde(default)]
    pub ttl: u32,
    /// Names of service directories (`api = "/aurora/www/prod/api"`), for
    /// paths not named by the roots.
    #[serde(default)]
    pub services: BTreeMap<String, String>,
    /// TTLs of some services, in seconds: `web = 30`, or a prefix ending
    /// in `*` (`"api-*" = 10`); the exact name, else the longest prefix,
    /// else `ttl`.
    #[serde(default)]
    pub service_ttl: BTreeMap<String, u32>,
    /// While ZooKeeper has been unreachable longer than this, services
    /// are answered SERVFAIL instead of their last known instances
    /// (default: the last known instances however old).
    #[serde(default, with = "crate::durations::optional")]
    pub max_stale: Option<Duration>,
}

/// `[dns]`, checked: the domain lower case and fully qualified, the
/// aliases' names lower case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dns {
    pub listen: SocketAddr,
    /// Lower case, ending in `.`.
    pub domain: String,
    pub ttl: u32,
    /// Lower-case names and their paths.
    pub services: BTreeMap<String, String>,
    /// Lower-case names (or prefixes ending in `*`) and their TTLs.
    pub service_ttl: BTreeMap<String, u32>,
    pub max_stale: Option<Duration>,
}

impl Dns {
    /// `[dns]` with every default but `listen`.
    pub fn with_defaults(listen: SocketAddr) -> Dns {
        Dns {
            listen,
            domain: default_domain(),
            ttl: 0,
            services: BTreeMap::new(),
            service_ttl: BTreeMap::new(),
            max_stale: None,
        }
    }

    /// The TTL of the service `name` (lower case): its own, else the
    /// longest matching prefix's, else `ttl`.
    pub fn ttl_of(&self, name: &str) -> u32 {
        if let Some(ttl) = self.service_ttl.get(name) {
            return *ttl;
        }
        self.service_ttl
            .iter()
            .filter_map(|(key, ttl)| {
                key.strip_suffix('*').filter(|p| name.starts_with(p)).map(|p| (p.len(), *ttl))
            })
            .max_by_key(|(len, _)| *len)
            .map_or(self.ttl, |(_, ttl)| ttl)
    }
}

fn default_dns_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8600))
}

fn default_domain() -> String {
    "ndsr.".into()
}

/// Is `label` one DNS label (letters, digits, `-` and `_`, 1-63 bytes)?
pub fn is_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks `[dns]`: the domain is a DNS name, each alias a label naming a
/// path under the roots.
pub fn check_dns(fields: Option<DnsFields>, within: impl Fn(&str) -> bool) -> Result<Option<Dns>, String> {
    let Some(fields) = fields else { return Ok(None) };
    let domain = fields.domain.trim_end_matches('.').to_ascii_lowercase();
    if domain.is_empty() || domain.len() > 200 || !domain.split('.').all(is_label) {
        return Err(format!("[dns] domain {:?} is not a DNS name (e.g. \"ndsr.\")", fields.domain));
    }
    let mut services = BTreeMap::new();
    for (name, path) in fields.services {
        let what = format!("[dns.services] {name}");
        if !is_label(&name) {
            return Err(format!("{what}: a name is one DNS label (letters, digits, - and _)"));
        }
        ndsr::validate_path(&path).map_err(|e| format!("{what}: {e}"))?;
        if !within(&path) {
            return Err(format!("{what} = {path:?} is outside the roots"));
        }
        if services.insert(name.to_ascii_lowercase(), path).is_some() {
            return Err(format!("{what} is given twice (names are not case-sensitive)"));
        }
    }
    let mut service_ttl = BTreeMap::new();
    for (key, ttl) in fields.service_ttl {
        let name = key.strip_suffix('*').unwrap_or(&key);
        if !(name.is_empty() || is_label(name)) || name.contains('*') {
            return Err(format!(
                "[dns.service_ttl] {key:?}: a service name, or a prefix ending in * (\"api-*\", \"*\")"
            ));
        }
        if service_ttl.insert(key.to_ascii_lowercase(), ttl).is_some() {
            return Err(format!("[dns.service_ttl] {key:?} is given twice (names are not case-sensitive)"));
        }
    }
    if fields.max_stale.is_some_and(|d| d.is_zero()) {
        return Err("[dns] max_stale must be more than 0s".into());
    }
    Ok(Some(Dns {
        listen: fields.listen,
        domain: format!("{domain}."),
        ttl: fields.ttl,
        services,
        service_ttl,
        max_stale: fields.max_stale,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Option<Dns>, String> {
        #[derive(Deserialize)]
        struct Wrap {
            dns: Option<DnsFields>,
        }
        let wrap: Wrap = toml::from_str(text).map_err(|e| e.to_string())?;
        check_dns(wrap.dns, |p| is_within(p, "/services"))
    }

    #[test]
    fn absent_is_no_dns_and_defaults_are_loopback() {
        assert_eq!(check("").unwrap(), None);
        let dns = check("[dns]").unwrap().unwrap();
        assert_eq!(dns.listen, "127.0.0.1:8600".parse().unwrap());
        assert_eq!((dns.domain.as_str(), dns.ttl), ("ndsr.", 0));
    }

    #[test]
    fn domain_and_aliases_are_checked() {
        let dns = check("[dns]\ndomain = \"Example.COM\"\n[dns.services]\nAPI = \"/services/a/b\"")
            .unwrap()
            .unwrap();
        assert_eq!(dns.domain, "example.com.");
        assert_eq!(dns.services.get("api").map(String::as_str), Some("/services/a/b"));
        let e = check("[dns]\ndomain = \"a..b\"").unwrap_err();
        assert!(e.contains("not a DNS name"), "{e}");
        let e = check("[dns.services]\n\"a.b\" = \"/services/x\"").unwrap_err();
        assert!(e.contains("one DNS label"), "{e}");
        let e = check("[dns.services]\napi = \"/other/x\"").unwrap_err();
        assert!(e.contains("outside the roots"), "{e}");
        let e = check("[dns.services]\napi = \"/services/x\"\nAPI = \"/services/y\"").unwrap_err();
        assert!(e.contains("given twice"), "{e}");
        let e = check("[dns]\nmax_stale = \"0s\"").unwrap_err();
        assert!(e.contains("max_stale"), "{e}");
        let e = check("[dns]\nmax_stale = \"soon\"").unwrap_err();
        assert!(e.contains("not a duration"), "{e}");
        let e = check("[dns.service_ttl]\n\"a*b\" = 1").unwrap_err();
        assert!(e.contains("prefix ending in *"), "{e}");
    }

    #[test]
    fn a_service_ttl_is_its_own_else_the_longest_prefix_else_the_default() {
        let text = "[dns]\nttl = 5\nmax_stale = \"1m\"\n[dns.service_ttl]\n\"*\" = 1\n\"api*\" = 2\n\"api-v*\" = 3\nApi = 4";
        let dns = check(text).unwrap().unwrap();
        assert_eq!(dns.max_stale, Some(Duration::from_secs(60)));
        let ttls: Vec<u32> = ["api", "api-v2", "api-x", "web"].iter().map(|n| dns.ttl_of(n)).collect();
        assert_eq!(ttls, [4, 3, 2, 1]);
        assert_eq!(check("[dns]\nttl = 5").unwrap().unwrap().ttl_of("web"), 5);
    }
}
