//! Without ZooKeeper the kit fails at once with the install command.
//! (Its own test binary: it changes the process environment.)

use ndsr_testkit::{Error, ZkServer};

#[test]
fn missing_installation_names_the_install_command() {
    let empty = tempfile::tempdir().unwrap();
    std::env::set_var("NDSR_ZOOKEEPER_JARS", empty.path());
    let started = std::time::Instant::now();
    let error = ZkServer::new().expect_err("no jars, no server");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    match error {
        Error::NotInstalled(message) => {
            assert!(message.contains("apt-get install -y zookeeper"), "{message}")
        }
        other => panic!("expected NotInstalled, got {other}"),
    }
}
