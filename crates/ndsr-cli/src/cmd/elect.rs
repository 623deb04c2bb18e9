//! `ndsr elect PATH -- CMD`: run a command only while leading an election;
//! `ndsr elect PATH --status`: who leads and who contends.

use std::process::ExitCode;

use ndsr::election::{Contender, Election, ElectionStatus, Leadership};
use ndsr::Registry;
use tokio::sync::watch;

use crate::args::{ElectArgs, Global};
use crate::cmd::child::{exit_code_of, kill_group, leftovers, pass_stop_on, stop_before_or, Group, REAP};
use crate::cmd::leash;
use crate::cmd::{check_path, connect, Signals, Stop};
use crate::error::{CliError, CliResult, Exit};
use crate::output;

/// The fencing token of the term, passed to the command.
pub const TOKEN_VAR: &str = "NDSR_LEADER_TOKEN";
/// The election's path, passed to the command.
pub const PATH_VAR: &str = "NDSR_ELECTION_PATH";
/// This contender's id, passed to the command.
pub const ID_VAR: &str = "NDSR_ELECTION_ID";

/// Runs `ndsr elect`: `--status`, or the command while leading.
pub async fn run(global: &Global, args: ElectArgs) -> CliResult<ExitCode> {
    check_path(&args.path)?;
    if args.status {
        return status(global, &args).await;
    }
    let Some((program, _)) = args.command.split_first() else {
        return Err(CliError::new(Exit::InvalidInput, "no command to run: give it after `--`"));
    };
    // A command that cannot run is said now, not after winning.
    if let Err(e) = leash::resolve(program) {
        return Err(CliError::new(Exit::Failure, format!("cannot run {program}: {e}")));
    }
    let registry = connect(global, false).await?;
    // Signals are caught before joining: one sent while the command starts
    // would otherwise end ndsr and leave the command running unguarded.
    let mut signals = match Signals::new() {
        Ok(signals) => signals,
        Err(e) => {
            registry.close().await;
            return Err(e);
        }
    };
    let id = args.id.clone().unwrap_or_else(default_id);
    let joined = registry
        .election(&args.path, &id)
        .layout(args.layout.into())
        .lost_after(args.lost_after)
        .grace(args.reconnect_grace)
        .join()
        .await;
    let election = match joined {
        Ok(election) => election,
        Err(e) => {
            registry.close().await;
            return Err(e.into());
        }
    };
    let term = Term { global, args: &args, registry: &registry, election: &election, id: &id, program };
    let outcome = term.run(&mut signals).await;
    election.resign().await;
    registry.close().await;
    outcome
}

/// `HOSTNAME:PID`.
fn default_id() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    format!("{host}:{}", std::process::id())
}

/// The exit code after a stop signal: 0 for SIGTERM and SIGHUP (a
/// supervisor's stop), 130 for SIGINT (as shells report Ctrl-C).
fn stopped_code(stop: Stop) -> ExitCode {
    match stop {
        Stop::Interrupt => ExitCode::from(130),
        Stop::Terminate | Stop::Hangup => ExitCode::SUCCESS,
    }
}

/// What ended a term as leader.
enum End {
    /// The command exited by itself.
    Exited(std::process::ExitStatus),
    /// Leadership was lost (the state seen then).
    Lost(Leadership),
    /// A stop signal arrived.
    Signal(Stop),
}

/// The terms of one contender: waits to lead, runs the command while
/// leading, stops it when leadership ends.
struct Term<'a> {
    global: &'a Global,
    args: &'a ElectArgs,
    registry: &'a Registry,
    election: &'a Election,
    id: &'a str,
    program: &'a str,
}

impl Term<'_> {
    /// Says how it goes on stderr, unless --quiet.
    fn say(&self, text: std::fmt::Arguments<'_>) {
        if !self.global.quiet {
            eprintln!("ndsr: {text}");
        }
    }

    async fn run(&self, signals: &mut Signals) -> CliResult<ExitCode> {
        let mut state = self.election.watch();
        loop {
            let token = tokio::select! {
                stop = signals.next() => return Ok(stopped_code(stop)),
                token = self.lead(&mut state) => match token {
                    Some(token) => token,
                    None => {
                        return Err(CliError::new(
                            Exit::Failure,
                            format!("the election at {} ended: the connection to ZooKeeper closed", self.args.path),
                        ))
                    }
                },
            };
            self.say(format_args!("leading {} with token {token}; running {}", self.args.path, self.program));
            let (program, rest) = (self.program, &self.args.command[1..]);
            // The command runs in a process group of its own, so that losing
            // leadership stops everything it started, not just its first
            // process.
            let spawned = leash::command(program, rest).and_then(|mut command| {
                command
                    .env(TOKEN_VAR, token.to_string())
                    .env(PATH_VAR, &self.args.path)
                    .env(ID_VAR, self.id)
                    .spawn()
            });
            let mut child = match spawned {
                Ok(child) => child,
                Err(e) => return Err(CliError::new(Exit::Failure, format!("cannot run {program}: {e}"))),
            };
            let group = Group::of(&child);
            let end = tokio::select! {
                status = child.wait() => End::Exited(status?),
                lost = not_leading(&mut state, token) => End::Lost(lost),
                stop = signals.next() => End::Signal(stop),
            };
            match end {
                End::Exited(status) => {
                    leftovers(group, REAP).await;
                    self.say(format_args!("{program} exited ({status}); resigning"));
                    return Ok(exit_code_of(status));
                }
                End::Lost(now) => {
                    let how = self.stop_lost(&mut child, group, &now, &mut state, token).await?;
                    let why = match now {
                        Leadership::Ended => "the connection to ZooKeeper closed",
                        Leadership::Lost => "connection lost, ZooKeeper silent, or its node gone",
                        _ => "its node is gone (session expired, or deleted)",
                    };
                    if self.args.once {
                        return Err(CliError::new(
                            Exit::LockLost,
                            format!("leadership of {} lost ({why}); {how} {program}", self.args.path),
                        ));
                    }
                    if now == Leadership::Ended {
                        return Err(CliError::new(
                            Exit::Failure,
                            format!("leadership of {} lost ({why}); {how} {program}", self.args.path),
                        ));
                    }
                    self.say(format_args!(
                        "leadership of {} lost ({why}); {how} {program}; waiting to lead again",
                        self.args.path
                    ));
                }
                End::Signal(stop) => {
                    self.interrupted(&mut child, group, signals, &mut state, token).await?;
                    return Ok(stopped_code(stop));
                }
            }
        }
    }

    /// Stops the command once leadership is lost: SIGTERM and what is left
    /// of --grace before the server could expire the session, when the
    /// session may still be alive (`Lost`); SIGKILL at once when it is
    /// not or another contender may lead already (the library's
    /// `lost_reason`), or as soon as that shows (the state moves on to joining again,
    /// following or a term with another token, or the session expired):
    /// another contender may lead already. Says `stopped` or `killed`.
    async fn stop_lost(
        &self,
        child: &mut tokio::process::Child,
        group: Group,
        now: &Leadership,
        state: &mut watch::Receiver<Leadership>,
        token: i64,
    ) -> CliResult<&'static str> {
        // Lost to another layout's contender, or the node gone: another
        // client may lead already, whatever the session.
        let another_may_lead = self.election.lost_reason().is_some_and(|r| r.another_may_lead());
        if *now == Leadership::Lost && self.session_may_live() && !another_may_lead {
            let mut sessions = self.registry.state_changes();
            let gone = async {
                tokio::select! {
                    // Leading again with the same node is no news; any
                    // other state is.
                    _ = state.wait_for(|s| match s {
                        Leadership::Lost => false,
                        Leadership::Leader { token: t } => *t != token,
                        _ => true,
                    }) => {}
                    _ = sessions.wait_for(|s| !may_live(*s)) => {}
                }
            };
            return Ok(stop_before_or(child, group, self.session_deadline(), self.args.grace, gone).await);
        }
        kill_group(child, group).await?;
        Ok("killed")
    }

    /// Is the session this contender led in perhaps alive still?
    fn session_may_live(&self) -> bool {
        may_live(self.registry.state())
    }

    /// The earliest moment the server may expire the session, counted from
    /// now, when leadership was just lost. A leader is heard from within
    /// --lost-after of the session timeout, or it steps down: the server
    /// then holds the session for at least the rest of the timeout.
    ///
    /// The library's deadline (the last answered request while leading,
    /// plus the negotiated timeout) when it has one, and never later than
    /// the one counted from the timeout asked for.
    fn session_deadline(&self) -> std::time::Instant {
        let part = 1.0 - self.args.lost_after.clamp(0.1, 0.9);
        let asked = std::time::Instant::now() + self.global.session_timeout.mul_f64(part);
        self.election.session_deadline().map_or(asked, |known| known.min(asked))
    }

    /// Waits until this contender leads: its token, or `None` once the
    /// election has ended. Says when it starts to follow.
    async fn lead(&self, state: &mut watch::Receiver<Leadership>) -> Option<i64> {
        let mut following = false;
        loop {
            match state.borrow_and_update().clone() {
                Leadership::Leader { token } => return Some(token),
                Leadership::Ended => return None,
                Leadership::Follower { position } => {
                    if !std::mem::replace(&mut following, true) {
                        self.say(format_args!(
                            "following in {} ({position} ahead); waiting to lead",
                            self.args.path
                        ));
                    }
                }
                Leadership::Joining | Leadership::Lost => following = false,
            }
            if state.changed().await.is_err() {
                return match state.borrow().clone() {
                    Leadership::Leader { token } => Some(token),
                    _ => None,
                };
            }
        }
    }

    /// A stop signal while the command runs: SIGTERM to its group, SIGKILL
    /// after --grace, on a second signal, or at once if leadership is lost
    /// meanwhile.
    async fn interrupted(
        &self,
        child: &mut tokio::process::Child,
        group: Group,
        signals: &mut Signals,
        state: &mut watch::Receiver<Leadership>,
        token: i64,
    ) -> CliResult {
        let program = self.program;
        let lost = async {
            not_leading(state, token).await;
        };
        pass_stop_on(child, group, program, self.args.grace, signals, lost).await?;
        self.say(format_args!("{program} stopped; resigning"));
        Ok(())
    }
}

/// Can a session in this state still be alive on the server?
fn may_live(state: ndsr::State) -> bool {
    matches!(state, ndsr::State::Connected | ndsr::State::Disconnected)
}

/// Waits until this contender no longer leads with `token` (a new token
/// is a new term: its node was made again, another may have led
/// meanwhile); the state seen then.
async fn not_leading(state: &mut watch::Receiver<Leadership>, token: i64) -> Leadership {
    loop {
        let now = state.borrow_and_update().clone();
        match now {
            Leadership::Leader { token: t } if t == token => {}
            other => return other,
        }
        if state.changed().await.is_err() {
            return Leadership::Ended;
        }
    }
}

/// `--status`: the layouts, leader and contenders of the path.
async fn status(global: &Global, args: &ElectArgs) -> CliResult<ExitCode> {
    let registry = connect(global, false).await?;
    let found = ndsr::election::status(&registry, &args.path).await;
    registry.close().await;
    let found = found?;
    if args.json {
        output::line(&output::json_pretty(&status_json(&args.path, &found)))?;
    } else {
        for line in status_text(&args.path, &found) {
            output::line(&line)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn contender_json(c: &Contender) -> serde_json::Value {
    serde_json::json!({
        "node": c.node,
        "layout": c.layout.name(),
        "sequence": c.sequence,
        "id": c.id,
    })
}

/// `{"path", "layouts": [..], "leader": contender or null, "contenders": [..]}`.
fn status_json(path: &str, status: &ElectionStatus) -> serde_json::Value {
    serde_json::json!({
        "path": path,
        "layouts": status.layouts.iter().map(|l| l.name()).collect::<Vec<_>>(),
        "leader": status.leader().map(contender_json),
        "contenders": status.contenders.iter().map(contender_json).collect::<Vec<_>>(),
    })
}

/// An id as typed, or quoted when it holds spaces or control characters.
fn shown(id: &str) -> String {
    if id.is_empty() || id.chars().any(|c| c.is_whitespace() || c.is_control() || c == '"') {
        format!("{id:?}")
    } else {
        id.to_string()
    }
}

fn status_text(path: &str, status: &ElectionStatus) -> Vec<String> {
    let mut lines = vec![format!("path: {path}")];
    let layouts = status.layouts.iter().map(|l| l.name()).collect::<Vec<_>>().join(", ");
    lines.push(match status.layouts.len() {
        0 => "layout: none (no contenders)".to_string(),
        1 => format!("layout: {layouts}"),
        _ => {
            format!("layouts: {layouts} (mixed: their clients disagree on who leads; join none of them here)")
        }
    });
    lines.push(match status.leader() {
        Some(c) => format!("leader: {} (node {})", shown(&c.id), c.node),
        None if status.layouts.len() > 1 => "leader: unknown (mixed layouts)".to_string(),
        None => "leader: none".to_string(),
    });
    if status.contenders.is_empty() {
        lines.push("contenders: none".to_string());
    } else {
        lines.push("contenders:".to_string());
        for (place, c) in status.contenders.iter().enumerate() {
            lines.push(format!("  {}. {} {} {} {}", place + 1, c.sequence, c.layout, shown(&c.id), c.node));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndsr::election::ElectionLayout;

    fn contender(layout: ElectionLayout, sequence: i64, id: &str) -> Contender {
        Contender { node: format!("n{sequence}"), layout, sequence, id: id.to_string() }
    }

    #[test]
    fn status_names_the_leader_of_one_layout_and_none_of_mixed_layouts() {
        let one = ElectionStatus {
            layouts: vec![ElectionLayout::Kazoo],
            contenders: vec![
                contender(ElectionLayout::Kazoo, 3, "a:1"),
                contender(ElectionLayout::Kazoo, 4, "b c"),
            ],
        };
        assert_eq!(
            status_text("/e", &one),
            [
                "path: /e",
                "layout: kazoo",
                "leader: a:1 (node n3)",
                "contenders:",
                "  1. 3 kazoo a:1 n3",
                "  2. 4 kazoo \"b c\" n4",
            ]
        );
        let mixed = ElectionStatus {
            layouts: vec![ElectionLayout::Kazoo, ElectionLayout::CuratorLatch],
            contenders: vec![
                contender(ElectionLayout::Kazoo, 1, "a"),
                contender(ElectionLayout::CuratorLatch, 2, "b"),
            ],
        };
        let json = status_json("/e", &mixed);
        assert_eq!(json["leader"], serde_json::Value::Null);
        assert_eq!(json["layouts"], serde_json::json!(["kazoo", "curator-latch"]));
        assert_eq!(json["contenders"][1]["layout"], "curator-latch");
        assert_eq!(status_text("/e", &mixed)[2], "leader: unknown (mixed layouts)");
        let none = ElectionStatus { layouts: vec![], contenders: vec![] };
        assert_eq!(
            status_text("/e", &none)[1..],
            ["layout: none (no contenders)", "leader: none", "contenders: none"]
        );
    }

    #[test]
    fn the_default_id_is_host_and_pid() {
        let id = default_id();
        assert!(id.ends_with(&format!(":{}", std::process::id())), "{id}");
        assert!(id.len() > std::process::id().to_string().len() + 1, "{id}");
    }
}
