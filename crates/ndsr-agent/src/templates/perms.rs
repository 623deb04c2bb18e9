//! `perms`: a rendered file's mode, written `"0640"` (or the TOML integer
//! `0o640`).

/// A file mode: the permission bits, at most `0o777`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perms(pub u32);

impl Perms {
    /// Reads octal text such as `"0640"` or `"640"`.
    pub fn parse(text: &str) -> Result<Perms, String> {
        let digits = text.strip_prefix("0o").unwrap_or(text);
        let mode = u32::from_str_radix(digits, 8)
            .map_err(|_| format!("perms {text:?} is not an octal mode like \"0640\""))?;
        Perms::of(mode)
    }

    fn of(mode: u32) -> Result<Perms, String> {
        if mode > 0o777 {
            return Err(format!(
                "perms {mode:o}: only the permission bits (at most 0777); no set-id or sticky bits"
            ));
        }
        Ok(Perms(mode))
    }
}

impl<'de> serde::Deserialize<'de> for Perms {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Perms, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Given {
            Text(String),
            Number(u32),
        }
        match Given::deserialize(d)? {
            Given::Text(text) => Perms::parse(&text),
            Given::Number(mode) => Perms::of(mode),
        }
        .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_modes() {
        assert_eq!(Perms::parse("0640"), Ok(Perms(0o640)));
        assert_eq!(Perms::parse("600"), Ok(Perms(0o600)));
        assert_eq!(Perms::parse("0o755"), Ok(Perms(0o755)));
        assert!(Perms::parse("0648").unwrap_err().contains("octal"));
        assert!(Perms::parse("rw-r--r--").unwrap_err().contains("octal"));
        assert!(Perms::parse("4755").unwrap_err().contains("set-id"));
        assert!(Perms::parse("").is_err());
    }
}
