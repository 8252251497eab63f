//! Membership among speakers (SWIM over UDP, authenticated), with real sockets on loopback:
//! members find each other through a seed, a killed member is declared down, a leaving one
//! is gone at once, and nobody without the key can join, move anything or send a message.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use lb_bin::membership::{seal, Membership, Settings, KIND_APP, KIND_SWIM};

const KEY: &[u8] = b"a shared key of at least 16 bytes";

async fn member(name: &str, seeds: &[SocketAddr], key: &[u8]) -> Membership {
    let s = Settings::new(name, "127.0.0.1:0".parse().unwrap(), seeds.to_vec(), key.to_vec());
    Membership::start(s).await.expect("membership starts")
}

fn names(m: &Membership) -> BTreeSet<String> {
    m.alive().into_keys().collect()
}

/// Waits (up to 10 s) until `f` holds.
async fn until(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn set(n: &[&str]) -> BTreeSet<String> {
    n.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_join_through_a_seed_and_see_deaths_and_departures() {
    let a = member("a", &[], KEY).await;
    let b = member("b", &[a.addr], KEY).await;
    let c = member("c", &[a.addr], KEY).await;
    let d = member("d", &[b.addr], KEY).await;
    let all = set(&["a", "b", "c", "d"]);
    assert!(until(|| [&a, &b, &c, &d].iter().all(|m| names(m) == all)).await, "a sees {:?}", names(&a));

    // Killed without a word (its task aborted, as SIGKILL would): declared down by SWIM.
    drop(c);
    assert!(until(|| [&a, &b, &d].iter().all(|m| names(m) == set(&["a", "b", "d"]))).await, "a sees {:?}", names(&a));

    // Leaving on purpose: the others learn it from the member itself.
    d.leave().await;
    assert!(until(|| names(&a) == set(&["a", "b"]) && names(&b) == set(&["a", "b"])).await);

    // A node that comes back under the same name is a member again.
    let c2 = member("c", &[b.addr], KEY).await;
    assert!(until(|| names(&a) == set(&["a", "b", "c"]) && names(&c2) == set(&["a", "b", "c"])).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_key_nobody_joins_or_declares_anyone_dead() {
    let mut a = member("a", &[], KEY).await;
    let b = member("b", &[a.addr], KEY).await;
    assert!(until(|| names(&a) == set(&["a", "b"])).await);
    let intruder = member("x", &[a.addr, b.addr], b"a different key, 16+ bytes").await;

    // A forged datagram: right framing, fresh, but tagged with another key.
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    sock.send_to(&seal(b"not the shared key at all", now, KIND_SWIM, b"member b is down"), a.addr).await.unwrap();
    sock.send_to(&seal(b"not the shared key at all", now, KIND_APP, b"I own everything"), a.addr).await.unwrap();
    // And a replay of nothing in particular: garbage.
    sock.send_to(&[1, 2, 3], a.addr).await.unwrap();

    assert!(until(|| a.rejected() >= 4).await, "rejected: {}", a.rejected());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(names(&a), set(&["a", "b"]), "the intruder never joined, b never went down");
    assert_eq!(names(&b), set(&["a", "b"]));
    assert_eq!(names(&intruder), set(&["x"]), "the intruder learned nothing");
    // Application messages: a member's arrive, with its address; the intruder's never did.
    let mut inbox = a.messages().expect("the inbox");
    b.send(a.addr, b"claims of b".to_vec());
    let got = tokio::time::timeout(Duration::from_secs(5), inbox.recv()).await.expect("in time").expect("a message");
    assert_eq!(got, (b.addr, b"claims of b".to_vec()));
    assert!(inbox.try_recv().is_err(), "nothing else was delivered");
    assert!(Membership::start(Settings::new("s", "127.0.0.1:0".parse().unwrap(), vec![], b"short".to_vec()))
        .await
        .is_err());
}
