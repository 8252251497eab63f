//! Allocator behaviour: one test per rule a user relies on, then property tests.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use proptest::prelude::*;

use super::*;
use crate::config::{PoolAllocation, Selector};
use crate::service::{Port, Protocol};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn pool(name: &str, addrs: &[&str]) -> Pool {
    Pool {
        name: name.into(),
        labels: BTreeMap::new(),
        ranges: addrs.iter().map(|a| AddrRange::parse(a).unwrap()).collect(),
        auto_assign: true,
        avoid_buggy_ips: false,
        allocation: None,
    }
}

fn key(n: &str) -> ServiceKey {
    ServiceKey::new("ns", n)
}

fn tcp(port: u16) -> Port {
    Port { protocol: Protocol::Tcp, port }
}

fn udp(port: u16) -> Port {
    Port { protocol: Protocol::Udp, port }
}

fn shared(k: &str, ports: &[Port]) -> Request {
    Request { sharing_key: Some(k.into()), ports: ports.to_vec(), ..Default::default() }
}

#[test]
fn allocates_in_address_order_and_reuses_released_addresses() {
    let mut a = Allocator::new(&[pool("p", &["10.0.0.0/30"])]);
    let got: Vec<_> = (0..4).map(|i| a.allocate(&key(&i.to_string()), &Request::default()).unwrap()[0]).collect();
    assert_eq!(got, [ip("10.0.0.0"), ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3")]);
    let err = a.allocate(&key("x"), &Request::default()).unwrap_err();
    assert_eq!(err, AllocError::Exhausted { family: Family::V4, pools: vec!["p".into()] });
    assert_eq!(a.release(&key("1")), vec![ip("10.0.0.1")]);
    assert_eq!(a.allocate(&key("x"), &Request::default()).unwrap(), vec![ip("10.0.0.1")]);
}

#[test]
fn allocation_is_idempotent_for_an_assigned_service() {
    let mut a = Allocator::new(&[pool("p", &["10.0.0.0/24"])]);
    let first = a.allocate(&key("a"), &Request::default()).unwrap();
    assert_eq!(a.allocate(&key("a"), &Request::default()).unwrap(), first);
    assert_eq!(a.stats()[0].assigned, 1);
}

#[test]
fn avoid_buggy_ips_skips_dot_zero_and_dot_255_everywhere() {
    let mut p = pool("p", &["10.0.0.254-10.0.2.1"]);
    p.avoid_buggy_ips = true;
    let mut a = Allocator::new(&[p]);
    let got: Vec<_> = (0..4).map(|i| a.allocate(&key(&i.to_string()), &Request::default()).unwrap()[0]).collect();
    assert_eq!(got, [ip("10.0.0.254"), ip("10.0.1.1"), ip("10.0.1.2"), ip("10.0.1.3")]);
    // 10.0.0.254, 10.0.1.1-254, 10.0.2.1
    assert_eq!(a.stats()[0].size, 256);
    let req = Request { ips: vec![ip("10.0.1.255")], ..Default::default() };
    assert_eq!(a.allocate(&key("b"), &req), Err(AllocError::Buggy { ip: ip("10.0.1.255"), pool: "p".into() }));
}

#[test]
fn requested_addresses_must_be_in_a_pool_and_free() {
    let mut a = Allocator::new(&[pool("p", &["10.0.0.0/24"]), pool("q", &["10.0.1.0/24"])]);
    let req = Request { ips: vec![ip("10.0.0.7")], ..Default::default() };
    assert_eq!(a.allocate(&key("a"), &req).unwrap(), vec![ip("10.0.0.7")]);
    assert!(matches!(a.allocate(&key("b"), &req), Err(AllocError::InUse { by, .. }) if by == key("a")));
    let outside = Request { ips: vec![ip("192.0.2.1")], ..Default::default() };
    assert_eq!(a.allocate(&key("b"), &outside), Err(AllocError::NotInPool(ip("192.0.2.1"))));
    let wrong = Request { ips: vec![ip("10.0.1.1")], pool: Some("p".into()), ..Default::default() };
    assert!(matches!(a.allocate(&key("b"), &wrong), Err(AllocError::WrongPool { .. })));
    // Auto-assignment skips the requested address.
    assert_eq!(a.allocate(&key("c"), &Request::default()).unwrap(), vec![ip("10.0.0.0")]);
}

#[test]
fn auto_assign_false_pools_serve_only_services_that_name_them() {
    let mut cheap = pool("cheap", &["10.0.0.0/31"]);
    let mut expensive = pool("expensive", &["10.0.9.0/31"]);
    expensive.auto_assign = false;
    cheap.auto_assign = true;
    let mut a = Allocator::new(&[cheap, expensive]);
    assert_eq!(a.auto_order(), ["cheap"]);
    a.allocate(&key("1"), &Request::default()).unwrap();
    a.allocate(&key("2"), &Request::default()).unwrap();
    assert!(matches!(a.allocate(&key("3"), &Request::default()), Err(AllocError::Exhausted { .. })));
    let named = Request { pool: Some("expensive".into()), ..Default::default() };
    assert_eq!(a.allocate(&key("3"), &named).unwrap(), vec![ip("10.0.9.0")]);
    let unknown = Request { pool: Some("nope".into()), ..Default::default() };
    assert_eq!(a.allocate(&key("4"), &unknown), Err(AllocError::UnknownPool("nope".into())));
}

#[test]
fn pools_are_tried_by_priority_then_name() {
    let mut high = pool("z-high", &["10.0.3.0/24"]);
    high.allocation = Some(PoolAllocation { priority: 10, ..Default::default() });
    let mut low = pool("y-low", &["10.0.2.0/24"]);
    low.allocation = Some(PoolAllocation { priority: 50, ..Default::default() });
    let unset = {
        let mut p = pool("x-unset", &["10.0.1.0/24"]);
        p.allocation = Some(PoolAllocation::default());
        p
    };
    let plain = pool("a-plain", &["10.0.0.0/24"]);
    let a = Allocator::new(&[plain, unset, low, high]);
    assert_eq!(a.auto_order(), ["z-high", "y-low", "x-unset", "a-plain"]);
}

#[test]
fn service_allocation_restricts_by_namespace_and_labels() {
    let mut team = pool("team", &["10.0.1.0/24"]);
    team.allocation = Some(PoolAllocation {
        priority: 1,
        namespaces: BTreeSet::from(["red".to_string()]),
        namespace_selectors: vec![Selector::from_labels(BTreeMap::from([("team".into(), "blue".into())]))],
        service_selectors: vec![],
    });
    let mut a = Allocator::new(&[pool("shared", &["10.0.0.0/24"]), team]);
    let red = a.allocate(&ServiceKey::new("red", "s"), &Request::default()).unwrap();
    assert_eq!(red, vec![ip("10.0.1.0")]);
    let blue_req =
        Request { namespace_labels: BTreeMap::from([("team".into(), "blue".into())]).into(), ..Default::default() };
    assert_eq!(a.allocate(&ServiceKey::new("b", "s"), &blue_req).unwrap(), vec![ip("10.0.1.1")]);
    assert_eq!(a.allocate(&ServiceKey::new("green", "s"), &Request::default()).unwrap(), vec![ip("10.0.0.0")]);
    let named = Request { pool: Some("team".into()), ..Default::default() };
    assert_eq!(a.allocate(&ServiceKey::new("green", "t"), &named), Err(AllocError::PoolNotAllowed("team".into())));
}

#[test]
fn sharing_needs_same_key_same_backend_and_distinct_ports() {
    let mut a = Allocator::new(&[pool("p", &["10.0.0.0/24"])]);
    let dns_udp = a.allocate(&key("udp"), &shared("dns", &[udp(53)])).unwrap();
    let dns_tcp = a.allocate(&key("tcp"), &shared("dns", &[tcp(53)])).unwrap();
    assert_eq!(dns_udp, dns_tcp, "same key, distinct ports: one address");
    assert_eq!(a.holders(dns_udp[0]), vec![&key("tcp"), &key("udp")]);
    let clash = a.allocate(&key("tcp2"), &shared("dns", &[tcp(53)])).unwrap();
    assert_ne!(clash, dns_udp, "a clashing port gets another address");
    let other_key = a.allocate(&key("x"), &shared("web", &[tcp(80)])).unwrap();
    assert_ne!(other_key, dns_udp);
    let want_same = Request { ips: dns_udp.clone(), ..shared("web", &[tcp(8080)]) };
    assert!(matches!(a.allocate(&key("y"), &want_same), Err(AllocError::InUse { .. })));
    let local = Request { ips: dns_udp.clone(), backend_key: "app=dns".into(), ..shared("dns", &[tcp(853)]) };
    assert!(matches!(a.allocate(&key("z"), &local), Err(AllocError::InUse { .. })));
    // Releasing one sharer keeps the address for the other.
    a.release(&key("udp"));
    assert_eq!(a.holders(dns_udp[0]), vec![&key("tcp")]);
    assert_eq!(a.stats()[0].assigned, 3);
}

#[test]
fn dual_stack_prefers_one_pool_then_mixes_pools() {
    let mut a = Allocator::new(&[
        pool("dual", &["10.0.0.0/31", "2001:db8::/127"]),
        pool("v4", &["10.1.0.0/24"]),
        pool("v6", &["2001:db8:1::/120"]),
    ]);
    let dual = Request { policy: FamilyPolicy::RequireDualStack, ..Default::default() };
    assert_eq!(a.allocate(&key("a"), &dual).unwrap(), vec![ip("10.0.0.0"), ip("2001:db8::")]);
    assert_eq!(a.assigned_pools(&key("a")), ["dual", "dual"]);
    let v6_first = Request {
        policy: FamilyPolicy::RequireDualStack,
        families: vec![Family::V6, Family::V4],
        ..Default::default()
    };
    assert_eq!(a.allocate(&key("b"), &v6_first).unwrap(), vec![ip("2001:db8::1"), ip("10.0.0.1")]);
    // "dual" is full: the next dual-stack service takes one address from each single pool.
    assert_eq!(a.allocate(&key("c"), &dual).unwrap(), vec![ip("10.1.0.0"), ip("2001:db8:1::")]);
    assert_eq!(a.assigned_pools(&key("c")), ["v4", "v6"]);
    let v6 = Request { families: vec![Family::V6], ..Default::default() };
    assert_eq!(a.allocate(&key("d"), &v6).unwrap(), vec![ip("2001:db8:1::1")]);
}

#[test]
fn prefer_dual_stack_settles_for_one_family_require_does_not() {
    let mut a = Allocator::new(&[pool("v4", &["10.0.0.0/24"])]);
    let prefer = Request { policy: FamilyPolicy::PreferDualStack, ..Default::default() };
    assert_eq!(a.allocate(&key("a"), &prefer).unwrap(), vec![ip("10.0.0.0")]);
    let require = Request { policy: FamilyPolicy::RequireDualStack, ..Default::default() };
    assert_eq!(a.allocate(&key("b"), &require), Err(AllocError::NoFamily(Family::V6)));
    assert_eq!(a.assigned(&key("b")), None);
}

#[test]
fn prefer_dual_stack_gains_the_missing_family_when_its_pool_can_give_it() {
    let mut a = Allocator::new(&[pool("p", &["10.0.0.0/31", "2001:db8::/128"])]);
    a.allocate(&key("taker"), &Request { families: vec![Family::V6], ..Default::default() }).unwrap();
    let prefer = Request { policy: FamilyPolicy::PreferDualStack, ..Default::default() };
    assert_eq!(a.allocate(&key("a"), &prefer).unwrap(), vec![ip("10.0.0.0")]);
    a.release(&key("taker"));
    assert_eq!(a.allocate(&key("a"), &prefer).unwrap(), vec![ip("10.0.0.0"), ip("2001:db8::")]);
    assert_eq!(a.stats()[0].assigned, 2);
}

#[test]
fn a_changed_request_moves_the_service_and_a_failed_one_keeps_the_old_address() {
    let mut a = Allocator::new(&[pool("p", &["10.0.0.0/24"]), pool("q", &["10.0.1.0/24"])]);
    assert_eq!(a.allocate(&key("a"), &Request::default()).unwrap(), vec![ip("10.0.0.0")]);
    let to_q = Request { pool: Some("q".into()), ..Default::default() };
    assert_eq!(a.allocate(&key("a"), &to_q).unwrap(), vec![ip("10.0.1.0")]);
    assert_eq!(a.stats()[0].assigned, 0);
    let bad = Request { ips: vec![ip("192.0.2.1")], ..Default::default() };
    assert!(a.allocate(&key("a"), &bad).is_err());
    assert_eq!(a.assigned(&key("a")), Some(vec![ip("10.0.1.0")]));
}

#[test]
fn restore_keeps_addresses_and_reports_conflicts() {
    let mut a = Allocator::new(&[pool("p", &["10.0.0.0/24"])]);
    a.restore(&key("a"), &Request::default(), &[ip("10.0.0.9")]).unwrap();
    let err = a.restore(&key("b"), &Request::default(), &[ip("10.0.0.9")]).unwrap_err();
    assert!(matches!(err, RestoreError::Conflict { by, .. } if by == key("a")));
    assert_eq!(a.holders(ip("10.0.0.9")), vec![&key("a")], "the first claim is kept");
    assert_eq!(
        a.restore(&key("c"), &Request::default(), &[ip("192.0.2.1")]),
        Err(RestoreError::NotInPool(ip("192.0.2.1")))
    );
    // Restored assignments survive a later allocate with the same request.
    assert_eq!(a.allocate(&key("a"), &Request::default()).unwrap(), vec![ip("10.0.0.9")]);
    assert_eq!(a.allocate(&key("n"), &Request::default()).unwrap(), vec![ip("10.0.0.0")]);
}

#[test]
fn pool_changes_evict_only_addresses_that_left_every_pool() {
    let mut a = Allocator::new(&[pool("p", &["10.0.0.0/24"])]);
    a.allocate(&key("a"), &Request { ips: vec![ip("10.0.0.10")], ..Default::default() }).unwrap();
    a.allocate(&key("b"), &Request { ips: vec![ip("10.0.0.200")], ..Default::default() }).unwrap();
    let evicted = a.update_pools(&[pool("p", &["10.0.0.0/25"])]);
    assert_eq!(evicted, vec![key("b")]);
    assert_eq!(a.assigned(&key("a")), Some(vec![ip("10.0.0.10")]));
    assert_eq!(a.stats()[0].assigned, 1);
}

#[test]
fn huge_ipv6_pools_cost_nothing() {
    let mut a = Allocator::new(&[pool("big", &["2001:db8::/48"])]);
    assert_eq!(a.stats()[0].size, 1u128 << 80);
    for i in 0..1000 {
        a.allocate(&key(&i.to_string()), &Request::default()).unwrap();
    }
    assert_eq!(a.allocate(&key("x"), &Request::default()).unwrap(), vec![ip("2001:db8::3e8")]);
    assert_eq!(a.pools[0].used[1].intervals(), 1);
}

#[test]
fn a_requested_address_is_stable_under_prefer_dual_stack() {
    let mut a = Allocator::new(&[pool("p", &["10.0.0.0/24", "2001:db8::/120"])]);
    let req = Request { ips: vec![ip("2001:db8::2")], policy: FamilyPolicy::PreferDualStack, ..Default::default() };
    for _ in 0..3 {
        assert_eq!(a.allocate(&key("a"), &req).unwrap(), vec![ip("2001:db8::2")]);
    }
    a.check_invariants();
}

#[test]
fn a_partial_dual_stack_assignment_is_completed_not_moved() {
    let mut a = Allocator::new(&[pool("p", &["10.0.0.0/24", "2001:db8::/120"])]);
    let dual = Request { policy: FamilyPolicy::RequireDualStack, ..Default::default() };
    a.restore(&key("a"), &dual, &[ip("10.0.0.2")]).unwrap();
    assert_eq!(a.allocate(&key("a"), &dual).unwrap(), vec![ip("10.0.0.2"), ip("2001:db8::")]);
    // Its IPv6 range goes away: the IPv4 address stays, and the service is reported.
    assert_eq!(a.update_pools(&[pool("p", &["10.0.0.0/24"]), pool("v6", &["2001:db8:1::/120"])]), vec![key("a")]);
    assert_eq!(a.assigned(&key("a")), Some(vec![ip("10.0.0.2")]));
    assert_eq!(a.allocate(&key("a"), &dual).unwrap(), vec![ip("10.0.0.2"), ip("2001:db8:1::")]);
    a.check_invariants();
}

#[test]
fn a_pool_that_stops_admitting_a_service_moves_it() {
    let mut team = pool("team", &["10.0.1.0/24"]);
    team.allocation = Some(PoolAllocation { namespaces: BTreeSet::from(["ns".to_string()]), ..Default::default() });
    let mut a = Allocator::new(&[pool("shared", &["10.0.0.0/24"]), team.clone()]);
    assert_eq!(a.allocate(&key("a"), &Request::default()).unwrap(), vec![ip("10.0.1.0")]);
    team.allocation = Some(PoolAllocation { namespaces: BTreeSet::from(["other".to_string()]), ..Default::default() });
    assert!(a.update_pools(&[pool("shared", &["10.0.0.0/24"]), team]).is_empty());
    assert_eq!(a.assigned(&key("a")), Some(vec![ip("10.0.1.0")]), "a config change alone moves nothing");
    assert_eq!(a.allocate(&key("a"), &Request::default()).unwrap(), vec![ip("10.0.0.0")]);
}

#[test]
fn a_pool_with_no_usable_address_reports_exhaustion() {
    let mut p = pool("edge", &["10.0.0.255/32", "10.0.1.0/32"]);
    p.avoid_buggy_ips = true;
    assert_eq!(usable_size(&p), 0);
    let mut a = Allocator::new(&[p]);
    let err = a.allocate(&key("a"), &Request { pool: Some("edge".into()), ..Default::default() }).unwrap_err();
    assert_eq!(err, AllocError::Exhausted { family: Family::V4, pools: vec!["edge".into()] });
}

#[test]
fn restore_refuses_two_addresses_of_one_family() {
    let mut a = Allocator::new(&[pool("p", &["10.0.0.0/24"])]);
    let err = a.restore(&key("a"), &Request::default(), &[ip("10.0.0.1"), ip("10.0.0.2")]).unwrap_err();
    assert!(matches!(err, RestoreError::Families(_)));
    a.restore(&key("a"), &Request::default(), &[ip("10.0.0.1"), ip("10.0.0.1")]).unwrap();
    assert_eq!(a.holders(ip("10.0.0.1")), vec![&key("a")]);
}

#[test]
fn many_services_on_one_sharing_key_stay_correct() {
    let mut a = Allocator::new(&[pool("p", &["10.0.0.0/16"])]);
    for i in 0..400 {
        a.allocate(&key(&format!("s{i}")), &shared("k", &[tcp(80)])).unwrap();
    }
    a.check_invariants();
    assert_eq!(a.stats()[0].assigned, 400, "a clashing port never shares");
    // A service on another port still finds a place to share.
    let ips = a.allocate(&key("udp"), &shared("k", &[udp(80)])).unwrap();
    assert_eq!(a.holders(ips[0]).len(), 2);
}

// ---- properties ----

#[derive(Debug, Clone)]
enum Op {
    Alloc {
        svc: u8,
        share: Option<u8>,
        port: u16,
        pool: Option<u8>,
        policy: u8,
        local: bool,
    },
    Request {
        svc: u8,
        offset: u8,
    },
    Release {
        svc: u8,
    },
    /// Switch to the other pool configuration (shrunk or back).
    Reconfigure,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..24, proptest::option::of(0u8..2), 1u16..4, proptest::option::of(0u8..4), 0u8..3, any::<bool>())
            .prop_map(|(svc, share, port, pool, policy, local)| Op::Alloc { svc, share, port, pool, policy, local }),
        1 => (0u8..24, 0u8..20).prop_map(|(svc, offset)| Op::Request { svc, offset }),
        2 => (0u8..24).prop_map(|svc| Op::Release { svc }),
        1 => Just(Op::Reconfigure),
    ]
}

fn test_pools() -> Vec<Pool> {
    let mut buggy = pool("c", &["10.0.1.254-10.0.2.2"]);
    buggy.avoid_buggy_ips = true;
    vec![
        pool("a", &["10.0.0.0/30", "10.0.0.8/31"]),
        pool("b", &["2001:db8::/126"]),
        buggy,
        pool("d", &["10.0.3.0/31", "2001:db8:3::/127"]),
    ]
}

/// The same pools, shrunk: some assigned addresses leave every pool.
fn shrunk_pools() -> Vec<Pool> {
    let mut p = test_pools();
    p[0].ranges = vec![AddrRange::parse("10.0.0.0/31").unwrap()];
    p[3].ranges = vec![AddrRange::parse("10.0.3.0/31").unwrap()];
    p
}

/// Applies `op`; `shrunk` tracks which pool configuration is in force. After every
/// successful allocation, allocating again with the same request changes nothing.
fn apply(a: &mut Allocator, reqs: &mut BTreeMap<ServiceKey, Request>, shrunk: &mut bool, op: &Op) {
    match *op {
        Op::Alloc { svc, share, port, pool, policy, local } => {
            let req = Request {
                sharing_key: share.map(|s| format!("k{s}")),
                backend_key: if local { "app=x".into() } else { String::new() },
                ports: vec![tcp(port)],
                pool: pool.map(|p| ["a", "b", "c", "d"][p as usize].to_string()),
                policy: [FamilyPolicy::SingleStack, FamilyPolicy::PreferDualStack, FamilyPolicy::RequireDualStack]
                    [policy as usize],
                ..Default::default()
            };
            let k = key(&svc.to_string());
            if let Ok(ips) = a.allocate(&k, &req) {
                assert_eq!(a.allocate(&k, &req), Ok(ips), "a repeated allocation must not move {k}");
                reqs.insert(k, req);
            }
        }
        Op::Reconfigure => {
            *shrunk = !*shrunk;
            let pools = if *shrunk { shrunk_pools() } else { test_pools() };
            for k in a.update_pools(&pools) {
                // The controller allocates again; if that fails the service keeps what survived.
                let req = reqs[&k].clone();
                if a.allocate(&k, &req).is_err() && a.assigned(&k).is_none() {
                    reqs.remove(&k);
                }
            }
        }
        Op::Request { svc, offset } => {
            let req = Request { ips: vec![ip(&format!("10.0.0.{offset}"))], ..Default::default() };
            let k = key(&svc.to_string());
            if let Ok(ips) = a.allocate(&k, &req) {
                assert_eq!(a.allocate(&k, &req), Ok(ips), "a repeated allocation must not move {k}");
                reqs.insert(k, req);
            }
        }
        Op::Release { svc } => {
            let k = key(&svc.to_string());
            a.release(&k);
            reqs.remove(&k);
        }
    }
}

proptest! {
    /// Never two services on one address unless they may share it; every address is in its
    /// pool and usable; every index agrees with the others (see `check_invariants`); and a
    /// repeated allocation never moves a service (checked inside `apply`).
    #[test]
    fn never_two_non_sharing_services_on_one_ip(ops in proptest::collection::vec(op(), 1..120)) {
        let pools = test_pools();
        let mut a = Allocator::new(&pools);
        let mut reqs = BTreeMap::new();
        let mut shrunk = false;
        for o in &ops {
            apply(&mut a, &mut reqs, &mut shrunk, o);
            a.check_invariants();
            for k in reqs.keys() {
                let ips = a.assigned(k).expect("every successful allocation is recorded");
                for (ip, pool_name) in ips.iter().zip(a.assigned_pools(k)) {
                    let p = pools.iter().find(|p| p.name == pool_name).unwrap();
                    prop_assert!(p.ranges.iter().any(|r| r.contains(*ip)));
                    if p.avoid_buggy_ips {
                        prop_assert!(!matches!(range::to_u128(*ip) & 0xff, 0 | 255));
                    }
                }
            }
        }
    }

    /// Releasing everything gives every address back: the pools are as new.
    #[test]
    fn released_addresses_come_back(ops in proptest::collection::vec(op(), 1..120)) {
        let mut a = Allocator::new(&test_pools());
        let mut reqs = BTreeMap::new();
        let mut shrunk = false;
        for o in &ops {
            apply(&mut a, &mut reqs, &mut shrunk, o);
        }
        for k in reqs.keys() {
            a.release(k);
        }
        prop_assert!(a.is_empty());
        prop_assert!(a.stats().iter().all(|s| s.assigned == 0));
        a.check_invariants();
        // And a fresh allocation starts from the first address again.
        prop_assert_eq!(a.allocate(&key("fresh"), &Request::default()).unwrap(), vec![ip("10.0.0.0")]);
    }

    /// Restoring a state (in any order) reproduces it: same use, same addresses, the same
    /// answers to the same requests afterwards, restored addresses never move, and the next
    /// allocation is the one it would have been without the restart.
    #[test]
    fn restore_reproduces_state(ops in proptest::collection::vec(op(), 1..120), rotate in 0usize..50) {
        let mut a = Allocator::new(&test_pools());
        let mut reqs = BTreeMap::new();
        let mut shrunk = false;
        for o in &ops {
            apply(&mut a, &mut reqs, &mut shrunk, o);
        }
        let mut state: Vec<(ServiceKey, Vec<IpAddr>)> =
            reqs.keys().map(|k| (k.clone(), a.assigned(k).unwrap())).collect();
        if !state.is_empty() {
            let n = rotate % state.len();
            state.rotate_left(n);
        }
        let mut b = Allocator::new(&if shrunk { shrunk_pools() } else { test_pools() });
        for (k, ips) in &state {
            b.restore(k, &reqs[k], ips).unwrap();
        }
        b.check_invariants();
        prop_assert_eq!(a.stats(), b.stats());
        for (k, ips) in &state {
            prop_assert_eq!(&b.assigned(k).unwrap(), ips);
        }
        for (k, ips) in &state {
            // Allocating again (as a controller does after restoring) does the same in both,
            // and never moves a restored address (it may only add a missing family).
            prop_assert_eq!(a.allocate(k, &reqs[k]), b.allocate(k, &reqs[k]));
            let now = b.assigned(k).unwrap();
            prop_assert!(ips.iter().all(|ip| now.contains(ip)), "{k}: {ips:?} became {now:?}");
        }
        let next = Request::default();
        prop_assert_eq!(a.allocate(&key("next"), &next), b.allocate(&key("next"), &next));
    }
}
