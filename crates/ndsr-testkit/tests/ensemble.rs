//! A three-node ensemble elects a leader and survives losing it.

use std::time::Duration;

use ndsr_testkit::{ensemble::Mode, eventually, unique_path, ZkEnsemble};
use zookeeper_client::{Acls, Client, CreateMode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_leader_elects_another_and_keeps_data() {
    let ensemble = ZkEnsemble::new().unwrap();
    let leader = ensemble.leader().expect("a leader is elected");
    let followers = (0..3).filter(|&i| ensemble.mode(i) == Mode::Follower).count();
    assert_eq!(followers, 2);

    let client = Client::connect(&ensemble.connect_string()).await.unwrap();
    let path = unique_path("ensemble");
    client.mkdir(&path, &CreateMode::Persistent.with_acls(Acls::anyone_all())).await.unwrap();

    ensemble.member(leader).stop().unwrap();
    assert_eq!(ensemble.mode(leader), Mode::Down);
    eventually(Duration::from_secs(30), "a new leader", || async {
        ensemble.leader().is_some_and(|l| l != leader)
    })
    .await
    .unwrap();

    eventually(Duration::from_secs(30), "the client reads through a survivor", || async {
        matches!(client.check_stat(&path).await, Ok(Some(_)))
    })
    .await
    .unwrap();

    ensemble.member(leader).start().unwrap();
    assert_eq!(ensemble.mode(leader), Mode::Follower, "the old leader rejoins as a follower");
}

#[test]
fn an_isolated_member_stops_serving_and_serves_again_when_it_rejoins() {
    use ndsr_testkit::{Mode, ZkEnsemble};
    let ensemble = ZkEnsemble::partitionable().unwrap();
    let serving = |i: usize| matches!(ensemble.mode(i), Mode::Leader | Mode::Follower);
    let wait = |what: &str, cond: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !cond() {
            assert!(std::time::Instant::now() < deadline, "timed out: {what}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    wait("all serving", &|| (0..3).all(serving));
    let cut = ensemble.leader().unwrap();
    ensemble.isolate(cut);
    wait("the isolated member stops serving", &|| !serving(cut));
    wait("the other two elect a leader", &|| {
        (0..3).filter(|&i| i != cut).all(serving) && ensemble.leader().is_some()
    });
    ensemble.rejoin(cut);
    wait("it serves again", &|| serving(cut));
}
