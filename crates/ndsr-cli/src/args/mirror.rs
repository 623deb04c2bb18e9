//! The grammar of `ndsr mirror`.

use super::*;

/// Arguments of `mirror`.
#[derive(Debug, Args)]
pub struct MirrorArgs {
    /// The source: SERVERS[/CHROOT]:PATH, e.g. zk1:2181,zk2:2181:/services (only read)
    pub src: String,
    /// The destination: SERVERS[/CHROOT]:PATH (made equal to the source under PATH)
    pub dst: String,
    /// Also hold the source's ephemeral nodes (registrations) on the destination, as ephemeral nodes of the mirror's session
    #[arg(long)]
    pub registrations: bool,
    /// A full comparison at least this often (changes under the source start one at once)
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s", value_name = "D")]
    pub interval: Duration,
    /// Converge once and exit (0: the destination equals the source)
    #[arg(long)]
    pub once: bool,
    /// The configuration root (histories, schemas), left out on both sides unless PATH is inside it
    #[arg(long, env = "NDSR_CONFIG_ROOT", default_value = "/ndsr", value_name = "PATH")]
    pub config_root: String,
}
