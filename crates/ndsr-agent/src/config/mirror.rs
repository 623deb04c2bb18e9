//! `[[mirror]]`: one-way copies of subtrees between ensembles that the
//! agent keeps (see `crate::mirror`).

use super::*;

/// A `[[mirror]]` as the file gives it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MirrorFields {
    /// The name in logs and metrics (`mirror` label).
    pub name: String,
    /// SERVERS[/CHROOT]:PATH to copy from (only read).
    pub source: String,
    /// SERVERS[/CHROOT]:PATH to copy to.
    pub destination: String,
    /// Hold the source's registrations on the destination.
    #[serde(default)]
    pub registrations: bool,
    /// A full comparison at least this often (default 10s).
    #[serde(default, with = "crate::durations::optional")]
    pub interval: Option<Duration>,
    /// The configuration root left out on both sides (default /ndsr).
    pub config_root: Option<String>,
}

/// A `[[mirror]]`, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorSpec {
    pub name: String,
    pub source: crate::mirror::Endpoint,
    pub destination: crate::mirror::Endpoint,
    pub options: crate::mirror::Options,
}

/// Checks the file's `[[mirror]]` entries.
pub fn check_mirrors(fields: Vec<MirrorFields>) -> Result<Vec<MirrorSpec>, String> {
    let mut mirrors: Vec<MirrorSpec> = Vec::new();
    for f in fields {
        let what = format!("[[mirror]] {:?}", f.name);
        if f.name.trim().is_empty() {
            return Err("a [[mirror]] has an empty name".into());
        }
        if mirrors.iter().any(|m| m.name == f.name) {
            return Err(format!("{what} is given twice"));
        }
        let source = f.source.parse().map_err(|e| format!("{what} source: {e}"))?;
        let destination = f.destination.parse().map_err(|e| format!("{what} destination: {e}"))?;
        let mut options = crate::mirror::Options { registrations: f.registrations, ..Default::default() };
        if let Some(interval) = f.interval {
            if interval.is_zero() {
                return Err(format!("{what} interval must be more than 0s"));
            }
            options.interval = interval;
        }
        if let Some(root) = f.config_root {
            ndsr::validate_path(&root).map_err(|e| format!("{what} config_root: {e}"))?;
            options.config_root = root;
        }
        mirrors.push(MirrorSpec { name: f.name, source, destination, options });
    }
    Ok(mirrors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(toml_text: &str) -> Result<Vec<MirrorSpec>, String> {
        #[derive(Deserialize)]
        struct Doc {
            mirror: Vec<MirrorFields>,
        }
        let doc: Doc = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        check_mirrors(doc.mirror)
    }

    #[test]
    fn mirrors_are_read_and_checked() {
        let ok = check(
            "[[mirror]]\nname = \"dc2\"\nsource = \"a:2181:/s\"\ndestination = \"b:2181/x:/s\"\n\
             registrations = true\ninterval = \"2s\"",
        )
        .unwrap();
        assert_eq!(ok[0].destination.servers, "b:2181/x");
        assert!(ok[0].options.registrations);
        assert_eq!(ok[0].options.interval, Duration::from_secs(2));
        assert_eq!(ok[0].options.config_root, "/ndsr");
        for (text, wanted) in [
            (
                "[[mirror]]\nname = \"m\"\nsource = \"a:2181\"\ndestination = \"b:/s\"",
                "source: \"a:2181\" has no path",
            ),
            ("[[mirror]]\nname = \"m\"\nsource = \"a:/s\"\ndestination = \"b:/s/\"", "destination:"),
            ("[[mirror]]\nname = \"\"\nsource = \"a:/s\"\ndestination = \"b:/s\"", "empty name"),
            (
                "[[mirror]]\nname = \"m\"\nsource = \"a:/s\"\ndestination = \"b:/s\"\ninterval = \"0s\"",
                "more than 0s",
            ),
            (
                "[[mirror]]\nname = \"m\"\nsource = \"a:/s\"\ndestination = \"b:/s\"\nsurprise = 1",
                "unknown field",
            ),
            (
                "[[mirror]]\nname = \"m\"\nsource = \"a:/s\"\ndestination = \"b:/s\"\n\
                 [[mirror]]\nname = \"m\"\nsource = \"a:/t\"\ndestination = \"b:/t\"",
                "given twice",
            ),
        ] {
            let e = check(text).unwrap_err();
            assert!(e.contains(wanted), "{text}: {e}");
        }
    }
}
