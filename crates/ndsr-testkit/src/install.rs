//! Finding a ZooKeeper installation and the Java that runs it.

use std::env;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Environment variable naming a directory of ZooKeeper jars (or one jar);
/// all `*.jar` files in it are put on the class path.
pub const JARS_ENV: &str = "NDSR_ZOOKEEPER_JARS";

/// Where Debian's `zookeeper` package puts the server jar. Its manifest
/// names the other jars it needs.
pub const DEBIAN_JAR: &str = "/usr/share/java/zookeeper.jar";

const INSTALL_HINT: &str =
    "ZooKeeper was not found. Install it with `apt-get update && apt-get install -y zookeeper` \
     (or run scripts/setup.sh), or point ZOOKEEPER_HOME at an unpacked ZooKeeper release, \
     or NDSR_ZOOKEEPER_JARS at a directory of its jars";

/// A located ZooKeeper installation: the `java` binary and the class path.
///
/// Looked up, in order, from `NDSR_ZOOKEEPER_JARS` (a jar directory),
/// `ZOOKEEPER_HOME` (an unpacked release: `lib/*.jar` and the top-level
/// jars) and Debian's layout (`/usr/share/java/zookeeper.jar`). Java is
/// `$JAVA_HOME/bin/java`, else `java` on `PATH`.
///
/// # Example
///
/// ```no_run
/// let install = ndsr_testkit::ZkInstall::find()?;
/// println!("java: {}", install.java.display());
/// # Ok::<(), ndsr_testkit::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ZkInstall {
    /// The Java launcher.
    pub java: PathBuf,
    /// The class path, `:`-separated.
    pub classpath: String,
}

impl ZkInstall {
    /// Finds ZooKeeper and Java.
    ///
    /// # Errors
    /// [`Error::NotInstalled`] with the command that installs what is
    /// missing.
    pub fn find() -> Result<ZkInstall> {
        let jars = if let Some(dir) = env::var_os(JARS_ENV) {
            let jars = jars_in(Path::new(&dir));
            if jars.is_empty() {
                return Err(Error::NotInstalled(format!(
                    "{JARS_ENV}={} holds no .jar files. {INSTALL_HINT}",
                    Path::new(&dir).display()
                )));
            }
            jars
        } else if let Some(home) = env::var_os("ZOOKEEPER_HOME") {
            let home = PathBuf::from(home);
            let mut jars = jars_in(&home.join("lib"));
            jars.extend(jars_in(&home));
            if !jars.iter().any(|j| is_server_jar(j)) {
                return Err(Error::NotInstalled(format!(
                    "ZOOKEEPER_HOME={} holds no zookeeper jar. {INSTALL_HINT}",
                    home.display()
                )));
            }
            jars
        } else if Path::new(DEBIAN_JAR).is_file() {
            // The Debian jar's manifest lists its dependencies; add an SLF4J
            // binding so the server's log is written to its log file.
            let mut jars = vec![PathBuf::from(DEBIAN_JAR)];
            let simple = Path::new("/usr/share/java/slf4j-simple.jar");
            if simple.is_file() {
                jars.push(simple.to_path_buf());
            }
            jars
        } else {
            return Err(Error::NotInstalled(INSTALL_HINT.to_string()));
        };
        let java = find_java()?;
        let classpath = jars.iter().map(|j| j.display().to_string()).collect::<Vec<_>>().join(":");
        Ok(ZkInstall { java, classpath })
    }
}

fn is_server_jar(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("zookeeper") && !n.contains("jute"))
}

fn jars_in(dir: &Path) -> Vec<PathBuf> {
    if dir.is_file() {
        return vec![dir.to_path_buf()];
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut jars: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jar"))
        .collect();
    jars.sort();
    jars
}

fn find_java() -> Result<PathBuf> {
    if let Some(home) = env::var_os("JAVA_HOME") {
        let java = PathBuf::from(home).join("bin/java");
        if java.is_file() {
            return Ok(java);
        }
    }
    let path = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path).map(|dir| dir.join("java")).find(|java| java.is_file()).ok_or_else(|| {
        Error::NotInstalled(
            "Java was not found on PATH (nor in JAVA_HOME). Install it with \
                 `apt-get update && apt-get install -y zookeeper` (which brings a JRE) \
                 or `apt-get install -y default-jre-headless`"
                .to_string(),
        )
    })
}
