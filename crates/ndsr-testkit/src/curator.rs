//! The real Apache Curator 5 as a test oracle: [`compile_oracle`] compiles
//! the small Java program `java/CuratorOracle.java` against Curator's jars
//! (Debian's `libcurator-discovery-java` and `libcurator-recipes-java` in
//! `/usr/share/java`, installed by `scripts/setup.sh`, or the directory
//! `NDSR_CURATOR_JARS` names) and returns the class path to run it with
//! (`java -cp CLASSPATH CuratorOracle COMMAND ...`; see the source for the
//! commands).

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The jars the oracle needs (those present are used).
const JARS: [&str; 16] = [
    "curator-x-discovery",
    "curator-recipes",
    "curator-framework",
    "curator-client",
    "zookeeper",
    "zookeeper-jute",
    "jackson-databind",
    "jackson-core",
    "jackson-annotations",
    "guava",
    "failureaccess",
    "slf4j-api",
    "slf4j-nop",
    "netty-handler",
    "netty-common",
    "netty-transport",
];

/// Compiles the oracle into `out` (a directory, made if missing) and
/// returns its class path.
///
/// # Errors
/// [`Error::NotInstalled`] when Curator's jars or `javac` are missing;
/// [`Error::InvalidState`] when the compilation fails.
pub fn compile_oracle(out: &Path) -> Result<String> {
    let jars =
        std::env::var_os("NDSR_CURATOR_JARS").map_or_else(|| PathBuf::from("/usr/share/java"), PathBuf::from);
    if !(jars.join("curator-x-discovery.jar").exists() && jars.join("curator-recipes.jar").exists()) {
        return Err(Error::NotInstalled(format!(
            "Curator 5's jars are not in {}: run scripts/setup.sh (apt-get install libcurator-discovery-java \
             libcurator-recipes-java) or set NDSR_CURATOR_JARS",
            jars.display()
        )));
    }
    let mut entries: Vec<String> = JARS
        .iter()
        .map(|name| jars.join(format!("{name}.jar")))
        .filter(|jar| jar.exists())
        .map(|jar| jar.display().to_string())
        .collect();
    std::fs::create_dir_all(out)
        .map_err(|source| Error::Io { context: format!("creating {}", out.display()), source })?;
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("java/CuratorOracle.java");
    let compiled = std::process::Command::new("javac")
        .arg("-cp")
        .arg(entries.join(":"))
        .arg("-d")
        .arg(out)
        .arg(&source)
        .output()
        .map_err(|e| Error::NotInstalled(format!("javac (a JDK) is needed for the Curator oracle: {e}")))?;
    if !compiled.status.success() {
        return Err(Error::InvalidState(format!("javac: {}", String::from_utf8_lossy(&compiled.stderr))));
    }
    entries.insert(0, out.display().to_string());
    Ok(entries.join(":"))
}
