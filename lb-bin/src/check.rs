//! `lb check`: load and validate configuration files, allocate addresses to the
//! LoadBalancer Services in them, and print pools and services as a table or as JSON.
//!
//! The JSON shape is stable (extra fields may be added):
//! `{"pools":[{"name","size","assigned"}],"services":[{"namespace","name","ips","pool","error"}],"warnings":[..]}`.
//! A pool's `size` is a JSON number even past `u64` (an IPv6 /48 has 2^80 addresses).
//! Exit status: 0 when the configuration is valid, even if some service got no address (its
//! `error` says why); 1 with every problem on stderr when it is not.

use std::io::Write;
use std::path::PathBuf;

use clap::ValueEnum;
use lbcore::config::{self, Diagnostic};
use lbcore::ipam::batch::{self, Outcomes};
use lbcore::ipam::{Allocator, PoolStats};
use lbcore::service::{self, Service};
use serde::Serialize;

use crate::{Error, Result};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Tables for people.
    Text,
    /// One JSON object for programs.
    Json,
}

/// Arguments of `lb check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format.
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: Format,
    /// Treat every warning as an error.
    #[arg(long)]
    pub strict: bool,
    /// Serve only services of this spec.loadBalancerClass (default: services without one).
    #[arg(long, env = "LB_LB_CLASS")]
    pub lb_class: Option<String>,
    /// Files or directories (their *.yaml, *.yml and *.json files) to read.
    #[arg(required = true, value_name = "FILE|DIR")]
    pub paths: Vec<PathBuf>,
}

/// One pool row.
#[derive(Debug, Serialize)]
pub struct PoolRow {
    /// Pool name.
    pub name: String,
    /// Usable addresses.
    pub size: u128,
    /// Addresses assigned.
    pub assigned: u128,
}

/// One service row.
#[derive(Debug, Serialize)]
pub struct ServiceRow {
    /// Namespace (`default` when the file gives none).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Assigned addresses.
    pub ips: Vec<String>,
    /// The pool of the addresses; two names joined by `,` for a dual-stack service served
    /// from two pools; null when none.
    pub pool: Option<String>,
    /// Every pool, one per address.
    pub pools: Vec<String>,
    /// Why the service has no address, or null.
    pub error: Option<String>,
}

/// The result of `lb check`.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Pools in name order.
    pub pools: Vec<PoolRow>,
    /// LoadBalancer services in allocation order.
    pub services: Vec<ServiceRow>,
    /// Warnings (also printed on stderr).
    pub warnings: Vec<String>,
}

/// Loads, validates and allocates. Warnings are printed on stderr as they are returned.
pub fn run(args: &Args) -> Result<Report> {
    let mut res = config::load_paths(&args.paths);
    let validated = config::validate(&res).map_err(Error::Config)?;
    let warnings: Vec<Diagnostic> = validated.warnings;
    if args.strict && !warnings.is_empty() {
        return Err(Error::Config(warnings));
    }
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let services = service::load_balancer_services(&mut res).map_err(Error::Config)?;
    let (alloc, outcomes) = batch::assign_all(&validated.config.pools, &services, args.lb_class.as_deref());
    Ok(Report::new(alloc.stats(), &services, &alloc, &outcomes, &warnings))
}

impl Report {
    /// The report of an allocation: pools from the allocator's [`Allocator::stats`], one row
    /// per service with what `alloc` holds for it.
    pub fn new(
        pools: Vec<PoolStats>,
        services: &[Service],
        alloc: &Allocator,
        outcomes: &Outcomes,
        warnings: &[Diagnostic],
    ) -> Self {
        let pools = pools.into_iter().map(|s| PoolRow { name: s.name, size: s.size, assigned: s.assigned }).collect();
        print_notes(services, outcomes);
        let services = services
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (ips, pools): (Vec<_>, Vec<_>) =
                    alloc.assignment(&s.key).into_iter().map(|(ip, p)| (ip.to_string(), p.to_string())).unzip();
                ServiceRow {
                    namespace: s.key.namespace.to_string(),
                    name: s.key.name.to_string(),
                    ips,
                    pool: distinct_pools(&pools),
                    pools,
                    error: outcomes.error(i).map(str::to_string),
                }
            })
            .collect();
        Report { pools, services, warnings: warnings.iter().map(|w| w.to_string()).collect() }
    }

    /// Writes the report as text tables or JSON.
    pub fn write(&self, out: &mut impl Write, json: bool) -> Result<()> {
        if json {
            serde_json::to_writer_pretty(&mut *out, self).map_err(std::io::Error::from)?;
            writeln!(out)?;
            return Ok(());
        }
        let pools: Vec<[String; 3]> =
            self.pools.iter().map(|p| [p.name.clone(), p.size.to_string(), p.assigned.to_string()]).collect();
        table(out, ["POOL", "SIZE", "ASSIGNED"], pools.len(), |i| pools[i].clone())?;
        writeln!(out)?;
        let row = |i: usize| {
            let s = &self.services[i];
            let ips = if s.ips.is_empty() { "-".to_string() } else { s.ips.join(",") };
            [format!("{}/{}", s.namespace, s.name), ips, pool_cell(s.pool.clone(), s.error.as_deref())]
        };
        table(out, ["SERVICE", "IPS", "POOL"], self.services.len(), row)
    }
}

/// Prints the allocator's notes about services on stderr.
pub fn print_notes(services: &[Service], outcomes: &Outcomes) {
    for (i, note) in outcomes.notes() {
        if let Some(s) = services.get(i) {
            eprintln!("note: {}: {note}", s.key);
        }
    }
}

/// Writes the text tables of an allocation, as [`Report::write`] does, straight from the
/// services, the allocator and the outcomes: each row is formatted as it is written (twice: once to size
/// the columns) and never held, so that `lb run` prints 100k services on every reload without
/// a copy of them.
pub fn write_tables(
    out: &mut impl Write,
    pools: &[PoolStats],
    services: &[Service],
    alloc: &Allocator,
    outcomes: &Outcomes,
) -> Result<()> {
    table(out, ["POOL", "SIZE", "ASSIGNED"], pools.len(), |i| {
        let p = &pools[i];
        [p.name.clone(), p.size.to_string(), p.assigned.to_string()]
    })?;
    writeln!(out)?;
    let row = |i: usize| {
        let s = &services[i];
        let held = alloc.assignment(&s.key);
        let ips = if held.is_empty() {
            "-".to_string()
        } else {
            held.iter().map(|(ip, _)| ip.to_string()).collect::<Vec<_>>().join(",")
        };
        let pools: Vec<&str> = held.iter().map(|(_, p)| *p).collect();
        [s.key.to_string(), ips, pool_cell(distinct_pools(&pools), outcomes.error(i))]
    };
    table(out, ["SERVICE", "IPS", "POOL"], services.len().min(outcomes.len()), row)
}

/// The pools of a service's addresses, each once, joined by `,`; None when it has none.
fn distinct_pools<S: AsRef<str>>(pools: &[S]) -> Option<String> {
    let mut distinct: Vec<&str> = Vec::new();
    for p in pools.iter().map(AsRef::as_ref) {
        if !distinct.contains(&p) {
            distinct.push(p);
        }
    }
    (!distinct.is_empty()).then(|| distinct.join(","))
}

/// The POOL cell: the error when there is one, else the pools, else `-`.
fn pool_cell(pool: Option<String>, error: Option<&str>) -> String {
    match (pool, error) {
        (_, Some(e)) => format!("error: {e}"),
        (Some(p), None) => p,
        (None, None) => "-".into(),
    }
}

/// Writes `rows` rows (made by `row`) under `header`, the first two columns padded to their
/// widest cell.
fn table(out: &mut impl Write, header: [&str; 3], rows: usize, row: impl Fn(usize) -> [String; 3]) -> Result<()> {
    let mut w = header.map(str::len);
    for i in 0..rows {
        for (j, c) in row(i).iter().enumerate() {
            w[j] = w[j].max(c.len());
        }
    }
    writeln!(out, "{:<a$}  {:<b$}  {}", header[0], header[1], header[2], a = w[0], b = w[1])?;
    for i in 0..rows {
        let r = row(i);
        writeln!(out, "{:<a$}  {:<b$}  {}", r[0], r[1], r[2], a = w[0], b = w[1])?;
    }
    Ok(())
}
