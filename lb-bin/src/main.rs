//! `lb`: the reference binary. Parses the command line, sets up logging and runs one
//! subcommand; every failure is returned here and turned into an exit code (0 ok,
//! 1 invalid configuration or runtime failure, 2 usage, printed by clap).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lb_bin::check::{self, Format};
use lb_bin::{controller, run, speaker};

#[derive(Parser)]
#[command(name = "lb", version, about = "A load balancer for bare-metal Kubernetes, MetalLB-compatible")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load and validate MetalLB configuration files, allocate addresses to the LoadBalancer
    /// Services in them, and print the result.
    Check(check::Args),
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
}

fn fail(e: &lb_bin::Error) -> ExitCode {
    for line in e.lines() {
        eprintln!("error: {line}");
    }
    ExitCode::FAILURE
}

/// Runs a long-lived subcommand on a single-threaded runtime, logging at info.
fn serve(job: impl std::future::Future<Output = lb_bin::Result<()>>) -> ExitCode {
    lb_bin::telemetry::init("info");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
    match rt.map_err(lb_bin::Error::Io).and_then(|rt| rt.block_on(job)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => serve(run::run(args)),
        Command::Controller(args) => serve(controller::run(args)),
        Command::Speaker(args) => serve(speaker::run(args)),
        Command::Crds => match lb_bin::crds::print(&mut std::io::stdout().lock()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        Command::Check(args) => {
            lb_bin::telemetry::init("warn");
            let json = args.output == Format::Json;
            match check::run(&args) {
                Ok(report) => {
                    let mut out = std::io::stdout().lock();
                    if let Err(e) = report.write(&mut out, json) {
                        eprintln!("error: {e}");
                        return ExitCode::FAILURE;
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
    }
}
