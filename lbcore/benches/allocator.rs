//! Allocator benchmarks: time per allocation from a /8-sized IPv4 pool and a /64 IPv6 pool
//! at 1k, 100k and 1M services (flat is the goal), on a packed and on a fragmented pool,
//! the time to restore 1M assignments, and the memory an assignment costs.
//!
//! Run: `cargo bench -p lbcore --bench allocator` (full, a few minutes), or
//! `cargo bench -p lbcore --bench allocator -- --test` (smoke: small sizes, one pass).

use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion};
use lbcore::config::Pool;
use lbcore::ipam::{AddrRange, Allocator};
use lbcore::service::{Request, ServiceKey};

fn smoke() -> bool {
    std::env::args().any(|a| a == "--test")
}

fn sizes() -> Vec<usize> {
    if smoke() {
        vec![1_000, 10_000]
    } else {
        vec![1_000, 100_000, 1_000_000]
    }
}

fn pool(name: &str, cidr: &str) -> Pool {
    Pool {
        name: name.into(),
        labels: Default::default(),
        ranges: vec![AddrRange::parse(cidr).expect("valid benchmark CIDR")],
        auto_assign: true,
        avoid_buggy_ips: false,
        allocation: None,
    }
}

/// The two pools of the issue: a /8-sized IPv4 pool and a /64 IPv6 pool.
fn pools() -> [(&'static str, Pool); 2] {
    [("v4-/8", pool("v4", "10.0.0.0/8")), ("v6-/64", pool("v6", "2001:db8::/64"))]
}

fn keys(n: usize) -> Vec<ServiceKey> {
    (0..n).map(|i| ServiceKey::new(format!("ns-{}", i % 100), format!("svc-{i}"))).collect()
}

fn filled(p: &Pool, keys: &[ServiceKey]) -> (Allocator, Duration) {
    let mut a = Allocator::new(std::slice::from_ref(p));
    let req = Request::default();
    let t = Instant::now();
    for k in keys {
        black_box(a.allocate(k, &req).expect("pool is large enough"));
    }
    (a, t.elapsed())
}

/// Allocating new services into a pool that already holds `n`: packed (one used interval)
/// and fragmented (every other address released, n/2 intervals, so the ordered-map lookups
/// work on a large tree). New services come in chunks of at most 1000 (allocated timed,
/// then released untimed), so the allocator stays at size `n` throughout.
fn bench_allocate(c: &mut Criterion) {
    let mut g = c.benchmark_group("allocate");
    g.sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    let fresh: Vec<ServiceKey> = (0..1000).map(|i| ServiceKey::new("bench", format!("fresh-{i}"))).collect();
    let req = Request::default();
    for (label, p) in pools() {
        for &n in &sizes() {
            let ks = keys(n);
            let (mut a, fill) = filled(&p, &ks);
            println!(
                "fill {label} n={n}: {:.3} µs per allocation (average over all {n})",
                fill.as_secs_f64() * 1e6 / n as f64
            );
            let run = |a: &mut Allocator, iters: u64| {
                let mut total = Duration::ZERO;
                let mut left = iters as usize;
                while left > 0 {
                    let chunk = &fresh[..left.min(fresh.len())];
                    let t = Instant::now();
                    for k in chunk {
                        black_box(a.allocate(k, &req).expect("free address"));
                    }
                    total += t.elapsed();
                    for k in chunk {
                        a.release(k);
                    }
                    left -= chunk.len();
                }
                total
            };
            g.bench_with_input(BenchmarkId::new(format!("{label}/packed"), n), &n, |b, _| {
                b.iter_custom(|iters| run(&mut a, iters))
            });
            for k in ks.iter().step_by(2) {
                a.release(k);
            }
            g.bench_with_input(BenchmarkId::new(format!("{label}/fragmented"), n / 2), &n, |b, _| {
                b.iter_custom(|iters| run(&mut a, iters))
            });
        }
    }
    g.finish();
}

/// Restoring n assignments into a fresh allocator (what a controller does on start).
fn bench_restore(c: &mut Criterion) {
    let mut g = c.benchmark_group("restore");
    g.sample_size(10).measurement_time(Duration::from_secs(10)).warm_up_time(Duration::from_secs(1));
    let n = *sizes().last().unwrap_or(&1000);
    for (label, p) in pools() {
        let ks = keys(n);
        let (a, _) = filled(&p, &ks);
        let state: Vec<(ServiceKey, Vec<IpAddr>)> =
            ks.iter().map(|k| (k.clone(), a.assigned(k).expect("assigned").to_vec())).collect();
        drop(a);
        let req = Request::default();
        g.bench_with_input(BenchmarkId::new(label, n), &n, |b, _| {
            b.iter(|| {
                let mut r = Allocator::new(std::slice::from_ref(&p));
                for (k, ips) in &state {
                    r.restore(k, &req, ips).expect("no conflicts");
                }
                black_box(r.len())
            })
        });
    }
    g.finish();
}

fn rss_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Memory: resident set growth while filling one pool with n services (the keys are made
/// before; the allocator keeps clones of them, which share their strings),
/// and the peak resident set of that process. Each pool is measured in a fresh child
/// process (this same binary, with `LB_BENCH_MEMORY=<pool>`), so freed memory from one
/// measurement does not hide the next.
fn report_memory() {
    let n = *sizes().last().unwrap_or(&1000);
    if let Ok(which) = std::env::var("LB_BENCH_MEMORY") {
        for (label, p) in pools().into_iter().filter(|(l, _)| *l == which) {
            let ks = keys(n);
            let before = rss_kib("VmRSS:").unwrap_or(0);
            let (a, _) = filled(&p, &ks);
            let after = rss_kib("VmRSS:").unwrap_or(0);
            let per = (after.saturating_sub(before) * 1024) as f64 / n as f64;
            println!(
                "memory {label} n={n}: RSS +{} MiB ({per:.0} bytes per assigned service, its key's strings shared with the caller's); peak RSS {} MiB",
                after.saturating_sub(before) / 1024,
                rss_kib("VmHWM:").unwrap_or(0) / 1024
            );
            black_box(a.len());
        }
        return;
    }
    let Ok(me) = std::env::current_exe() else { return };
    for (label, _) in pools() {
        let out = std::process::Command::new(&me).args(std::env::args().skip(1)).env("LB_BENCH_MEMORY", label).output();
        match out {
            Ok(o) => print!("{}", String::from_utf8_lossy(&o.stdout)),
            Err(e) => println!("memory {label}: cannot run the measuring child: {e}"),
        }
    }
}

criterion_group!(benches, bench_allocate, bench_restore);

fn main() {
    report_memory();
    if std::env::var_os("LB_BENCH_MEMORY").is_some() {
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
