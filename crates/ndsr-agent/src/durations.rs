//! Durations in the configuration file, written as humantime text ("5s",
//! "10m"), for serde's `with`.

/// A required duration.
pub(crate) mod required {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    /// Reads "5s", "10m", ...; the error says what was given.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map_err(|e| serde::de::Error::custom(format!("{text:?} is not a duration like \"5s\" ({e})")))
    }
}

/// An optional duration (with `#[serde(default)]`).
pub(crate) mod optional {
    use std::time::Duration;

    use serde::Deserializer;

    /// As [`super::required::deserialize`], wrapped in `Some`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::required::deserialize(d).map(Some)
    }
}
