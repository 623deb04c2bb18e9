//! The hold loop behind the agent's registrations, against a real
//! ZooKeeper: a sequential node (ServerSet, nerve) is never left behind by
//! a stop during its write, and one whose write failed is asked again
//! until it holds, after a maintenance ends as after a check passes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ndsr::discovery::{Announcement, NerveInstance, ServerSetMember};
use ndsr::Registry;
use ndsr_agent::check::Check;
use ndsr_agent::hold::{hold_marked, Checked, Maintenance, Release, Target};
use ndsr_testkit::{eventually, unique_path, FaultProxy, ZkServer};
use tokio::sync::{oneshot, watch};

const SERVERSET: &[u8] =
    br#"{"serviceEndpoint":{"host":"10.0.0.2","port":80},"additionalEndpoints":{},"status":"ALIVE","shard":1}"#;

async fn registry(connect: &str) -> Registry {
    Registry::builder(connect)
        .session_timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .await
        .expect("registry")
}

/// The children of `dir` as a plain read finds them now.
async fn children(registry: &Registry, dir: &str) -> Vec<String> {
    registry.read_node_raw(dir).await.expect("read").map(|n| n.children).unwrap_or_default()
}

fn nerve(dir: &str) -> Target {
    Target::Announce(Announcement::Nerve {
        dir: dir.into(),
        instance: NerveInstance::new("web", "10.0.0.3", 80),
        path_encoding: false,
    })
}

/// What the hold said, as text, in order.
#[derive(Clone, Default)]
struct Heard(Arc<Mutex<Vec<String>>>);

impl Heard {
    fn push(&self, what: String) {
        self.0.lock().unwrap().push(what);
    }
    fn any(&self, prefix: &str) -> bool {
        self.0.lock().unwrap().iter().any(|e| e.starts_with(prefix))
    }
}

async fn heard(heard: &Heard, prefix: &str) {
    let what = format!("the hold says {prefix}");
    eventually(Duration::from_secs(20), &what, || async { heard.any(prefix) }).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_a_serverset_write_leaves_no_member_behind() {
    let server = ZkServer::shared().connect_string();
    let proxy = FaultProxy::start(&server).unwrap();
    let observer = registry(&server).await;
    let through = registry(&proxy.connect_string()).await;
    let dir = unique_path("hold-stop");
    observer.put_raw(&dir, b"").await.unwrap();
    assert!(children(&through, &dir).await.is_empty(), "connected");
    // Every request and answer late: the member is made on the server
    // well before its answer reaches the hold.
    proxy.delay(Duration::from_millis(800));
    let target = Target::Announce(Announcement::ServerSet {
        dir: dir.clone(),
        member: ServerSetMember::new("10.0.0.2", 80),
    });
    let (_never, marks) = watch::channel(None::<Maintenance>);
    let (stop, stopped) = oneshot::channel();
    let stop_when_made = async {
        eventually(Duration::from_secs(20), "the member is made", || async {
            !children(&observer, &dir).await.is_empty()
        })
        .await
        .unwrap();
        stop.send(Release::Withdraw).unwrap();
    };
    let holding = hold_marked(
        &through,
        &target,
        None,
        false,
        marks,
        Clone::clone,
        async { stopped.await.unwrap_or(Release::Withdraw) },
        |_| Ok::<(), ()>(()),
        |_| {},
    );
    let (held, ()) = tokio::join!(holding, stop_when_made);
    assert_eq!(held, Ok(None), "withdrawn");
    // The hold is over: nothing it made is left.
    assert_eq!(children(&observer, &dir).await, Vec::<String>::new(), "no member left behind");
    proxy.delay(Duration::ZERO);
    through.close().await;
    observer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withheld_nerve_instance_whose_write_fails_when_maintenance_ends_is_written_again() {
    let server = ZkServer::shared().connect_string();
    let registry = registry(&server).await;
    let dir = unique_path("hold-withheld");
    let target = nerve(&dir);
    let (marks, marked) = watch::channel(Some(Maintenance { reason: None }));
    let (stop, stopped) = oneshot::channel();
    let events = Heard::default();
    let holding = hold_marked(
        &registry,
        &target,
        None,
        false,
        marked,
        Clone::clone,
        async { stopped.await.unwrap_or(Release::Withdraw) },
        |e| {
            events.push(format!("{e:?}"));
            Ok::<(), ()>(())
        },
        |e| events.push(format!("{e:?}")),
    );
    let driving = async {
        heard(&events, "Withheld").await;
        // Another format in the directory: the write is refused.
        let conflict = format!("{dir}/member_0000000001");
        registry.put_raw(&conflict, SERVERSET).await.unwrap();
        marks.send(None).unwrap();
        heard(&events, "RegisterFailed").await;
        registry.delete_raw(&conflict).await.unwrap();
        eventually(Duration::from_secs(20), "the instance is registered again", || async {
            children(&registry, &dir).await.iter().any(|c| c.starts_with("web_"))
        })
        .await
        .unwrap();
        stop.send(Release::Withdraw).unwrap();
    };
    let (held, ()) = tokio::join!(holding, driving);
    assert_eq!(held, Ok(None));
    assert_eq!(children(&registry, &dir).await, Vec::<String>::new(), "withdrawn at the end");
    registry.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nerve_instance_whose_first_write_fails_after_its_check_passes_is_written_again() {
    let server = ZkServer::shared().connect_string();
    let registry = registry(&server).await;
    let dir = unique_path("hold-first");
    let conflict = format!("{dir}/member_0000000001");
    registry.put_raw(&conflict, SERVERSET).await.unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let checked = Checked {
        check: Check::tcp(&listener.local_addr().unwrap().to_string()).unwrap(),
        interval: Duration::from_millis(200),
        rise: 1,
        fall: 1,
    };
    let target = nerve(&dir);
    let (_marks, marked) = watch::channel(None::<Maintenance>);
    let (stop, stopped) = oneshot::channel();
    let events = Heard::default();
    let holding = hold_marked(
        &registry,
        &target,
        Some(&checked),
        false,
        marked,
        Clone::clone,
        async { stopped.await.unwrap_or(Release::Withdraw) },
        |e| {
            events.push(format!("{e:?}"));
            Ok::<(), ()>(())
        },
        |e| events.push(format!("{e:?}")),
    );
    let driving = async {
        heard(&events, "RegisterFailed").await;
        registry.delete_raw(&conflict).await.unwrap();
        eventually(Duration::from_secs(20), "the instance is registered", || async {
            children(&registry, &dir).await.iter().any(|c| c.starts_with("web_"))
        })
        .await
        .unwrap();
        stop.send(Release::Withdraw).unwrap();
    };
    let (held, ()) = tokio::join!(holding, driving);
    assert_eq!(held, Ok(None));
    registry.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withheld_nerve_instance_whose_check_fails_is_said_unhealthy() {
    let server = ZkServer::shared().connect_string();
    let registry = registry(&server).await;
    let dir = unique_path("hold-withheld-unhealthy");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let checked = Checked {
        check: Check::tcp(&listener.local_addr().unwrap().to_string()).unwrap(),
        interval: Duration::from_millis(200),
        rise: 1,
        fall: 1,
    };
    let target = nerve(&dir);
    let (_marks, marked) = watch::channel(Some(Maintenance { reason: None }));
    let (stop, stopped) = oneshot::channel();
    let events = Heard::default();
    let holding = hold_marked(
        &registry,
        &target,
        Some(&checked),
        false,
        marked,
        Clone::clone,
        async { stopped.await.unwrap_or(Release::Withdraw) },
        |e| {
            events.push(format!("{e:?}"));
            Ok::<(), ()>(())
        },
        |e| events.push(format!("{e:?}")),
    );
    let driving = async {
        heard(&events, "Withheld").await;
        drop(listener);
        heard(&events, "WithheldUnhealthy").await;
        stop.send(Release::Withdraw).unwrap();
    };
    let (held, ()) = tokio::join!(holding, driving);
    assert_eq!(held, Ok(None));
    assert_eq!(children(&registry, &dir).await, Vec::<String>::new(), "never registered");
    registry.close().await;
}
