//! The command line of `lb`: its subcommands and their arguments (in the library so that
//! tests can check that what `lb manifests` writes into pod specs parses).

use clap::{Parser, Subcommand};

use crate::{check, controller, demo, explain, manifests, run, speaker};

/// `lb`.
#[derive(Debug, Parser)]
#[command(name = "lb", version, about = "A load balancer for bare-metal Kubernetes, MetalLB-compatible")]
pub struct Cli {
    /// Log lines as text or as JSON objects (one a line).
    #[arg(long, global = true, env = "LB_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: crate::telemetry::LogFormat,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load and validate MetalLB configuration files, allocate addresses to the LoadBalancer
    /// Services in them, and print the result.
    Check(check::Args),
    /// L2 and BGP mode at work in namespaces of its own (root): two nodes, a client, a BIRD
    /// router, a node killed; everything removed at the end.
    Demo(demo::Args),
    /// Why a Service has (or has not) an address, and who announces it: pools,
    /// advertisements, nodes, the L2 owner and the BGP peers, each with its reason.
    Explain(explain::Args),
    /// Do the whole job on this host: allocate and announce (L2 mode), reload on SIGHUP or
    /// file change, withdraw on SIGINT/SIGTERM.
    Run(run::Args),
    /// Assign addresses to LoadBalancer Services in a Kubernetes cluster and write them to
    /// Service status (one leader among replicas, by Lease).
    Controller(controller::Args),
    /// Announce, from this node, the addresses the controller assigned (L2 and BGP).
    Speaker(speaker::Args),
    /// Print the metallb.io CustomResourceDefinitions lb serves, as YAML.
    Crds,
    /// Print a complete install manifest (namespace, CRDs, RBAC, controller, speaker) as YAML,
    /// for `lb manifests | kubectl apply -f -`.
    Manifests(manifests::Args),
}
