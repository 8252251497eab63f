//! Embedding `lbcore`: load MetalLB YAML, validate it, and allocate addresses.
//!
//! Run: `cargo run -p lb-examples --example allocate -- examples/homelab-l2.yaml`

use lbcore::config::{self, Resources};
use lbcore::ipam::Allocator;
use lbcore::service::{self, Request, ServiceKey};

fn main() {
    let path = std::env::args().nth(1).unwrap_or_else(|| "examples/homelab-l2.yaml".into());
    let mut res = Resources::default();
    res.load_path(path.as_ref());
    let validated = match config::validate(&res) {
        Ok(v) => v,
        Err(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            std::process::exit(1);
        }
    };
    let mut alloc = Allocator::new(&validated.config.pools);
    // Services from the file, then one made up in code.
    for svc in service::load_balancer_services(&mut res).unwrap_or_default() {
        match &svc.request {
            Ok(req) => match alloc.allocate(&svc.key, req) {
                Ok(ips) => println!("{} -> {ips:?}", svc.key),
                Err(e) => println!("{} -> no address: {e}", svc.key),
            },
            Err(e) => println!("{} -> bad request: {e}", svc.key),
        }
    }
    let key = ServiceKey::new("demo", "from-code");
    println!("{key} -> {:?}", alloc.allocate(&key, &Request::default()));
    for s in alloc.stats() {
        println!("pool {}: {}/{} assigned", s.name, s.assigned, s.size);
    }
}
