//! The grammar of `ndsr elect`.

use super::*;

const ELECT_EXIT_CODES: &str = "\
EXIT CODES:
    N    CMD exited by itself with N while leading (128+S: killed by signal S); ndsr resigned
    0    stopped by SIGTERM or SIGHUP: CMD stopped, resigned; --status
    1    CMD could not be started; the connection closed; unexpected ZooKeeper or system error
    2    usage error
    3    invalid input: bad path, or the path holds another layout's contenders (the message names it)
    4    no connection: ZooKeeper unreachable within --timeout
    5    not authorized: the path's ACL refuses these credentials
    6    read-only: --readonly
    8    --once: leadership lost while CMD ran; CMD was stopped
    130  stopped by SIGINT: CMD stopped, resigned";

/// Arguments of `elect`.
#[derive(Debug, Args)]
#[command(after_help = ELECT_EXIT_CODES, after_long_help = ELECT_EXIT_CODES)]
pub struct ElectArgs {
    /// The election path, e.g. /election/cron
    pub path: String,
    /// This contender's id, stored in its node (default: HOSTNAME:PID)
    #[arg(long)]
    pub id: Option<String>,
    /// Whose node layout to use: join in the layout the path's other clients use
    #[arg(long, value_enum, default_value_t = ElectLayout::Kazoo)]
    pub layout: ElectLayout,
    /// After SIGTERM (on loss of leadership, or passed on from SIGINT/SIGTERM/SIGHUP), how long the
    /// command has to exit before its group is killed (cut short on loss of leadership, so that it has
    /// ended before the server can expire the session and another contender lead)
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub grace: Duration,
    /// Exit after the first term as leader instead of waiting to lead again (exit 8 when the
    /// leadership was lost)
    #[arg(long)]
    pub once: bool,
    /// Leadership counts as lost once ZooKeeper has not answered for this part of the session timeout
    /// (0.1 to 0.9)
    #[arg(long, value_name = "PART", value_parser = parse_lost_after, default_value = "0.67")]
    pub lost_after: f64,
    /// How long a leader whose connection drops keeps leading (and its command running) while it
    /// reconnects; never past --lost-after of the session timeout since ZooKeeper last answered
    /// (default: none, leadership ends at once)
    #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration, default_value = "0s")]
    pub reconnect_grace: Duration,
    /// Show the path's layout(s), leader and contenders (of any layout) and exit; no command
    #[arg(long, conflicts_with_all = ["id", "layout", "grace", "once", "lost_after", "reconnect_grace", "command"])]
    pub status: bool,
    /// With --status: print JSON
    #[arg(long, conflicts_with_all = ["id", "layout", "grace", "once", "lost_after", "reconnect_grace", "command"])]
    pub json: bool,
    /// The command to run while leading, after `--`
    #[arg(last = true, required_unless_present = "status", value_name = "CMD")]
    pub command: Vec<String>,
}

/// The node layouts of `elect --layout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ElectLayout {
    /// kazoo's `Election`: `<uuid hex>__lock__<seq>`.
    Kazoo,
    /// Curator's `LeaderLatch`: `_c_<uuid>-latch-<seq>`.
    CuratorLatch,
    /// Curator's `LeaderSelector`: `_c_<uuid>-lock-<seq>`.
    CuratorSelector,
}

impl From<ElectLayout> for ndsr::election::ElectionLayout {
    fn from(layout: ElectLayout) -> ndsr::election::ElectionLayout {
        match layout {
            ElectLayout::Kazoo => ndsr::election::ElectionLayout::Kazoo,
            ElectLayout::CuratorLatch => ndsr::election::ElectionLayout::CuratorLatch,
            ElectLayout::CuratorSelector => ndsr::election::ElectionLayout::CuratorSelector,
        }
    }
}

/// The part of the session timeout after which a silent server means
/// leadership lost: 0.1 to 0.9, as the library takes it.
fn parse_lost_after(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(part) if (0.1..=0.9).contains(&part) => Ok(part),
        _ => Err(format!("{text:?} is not a number from 0.1 to 0.9, e.g. 0.67")),
    }
}
