//! `lb`: the reference binary. Parses the command line, sets up logging and runs one
//! subcommand; every failure is returned here and turned into an exit code (0 ok,
//! 1 invalid configuration or runtime failure, 2 usage, printed by clap).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lb_bin::check::{self, Format};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    lb_bin::telemetry::init();
    match cli.command {
        Command::Check(args) => {
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
                Err(e) => {
                    for line in e.lines() {
                        eprintln!("error: {line}");
                    }
                    ExitCode::FAILURE
                }
            }
        }
    }
}
