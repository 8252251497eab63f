//! `lb`: the reference binary. Parses the command line, sets up logging and runs one
//! subcommand; every failure is returned here and turned into an exit code (0 ok,
//! 1 invalid configuration or runtime failure, 2 usage, printed by clap).

use std::process::ExitCode;

use clap::Parser;
use lb_bin::check::{self, Format};
use lb_bin::cli::{Cli, Command};
use lb_bin::telemetry::LogFormat;
use lb_bin::{controller, manifests, run, speaker};

fn fail(e: &lb_bin::Error) -> ExitCode {
    for line in e.lines() {
        eprintln!("error: {line}");
    }
    ExitCode::FAILURE
}

/// Runs a long-lived subcommand on a single-threaded runtime, logging at info.
fn serve(job: impl std::future::Future<Output = lb_bin::Result<()>>, log: LogFormat) -> ExitCode {
    lb_bin::telemetry::init("info", log);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
    match rt.map_err(lb_bin::Error::Io).and_then(|rt| rt.block_on(job)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = cli.log_format;
    match cli.command {
        Command::Run(args) => serve(run::run(args), log),
        Command::Controller(args) => serve(controller::run(args), log),
        Command::Speaker(args) => serve(speaker::run(args), log),
        Command::Manifests(args) => match manifests::print(&args, &mut std::io::stdout().lock()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        Command::Crds => match lb_bin::crds::print(&mut std::io::stdout().lock()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        Command::Demo(args) => {
            lb_bin::telemetry::init("warn", log);
            match lb_bin::demo::run_demo(&args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
        Command::Explain(args) => {
            lb_bin::telemetry::init("warn", log);
            let result = match &args.kubeconfig {
                Some(path) => tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(lb_bin::Error::Io)
                    .and_then(|rt| rt.block_on(lb_bin::explain::explain_cluster(&args, path))),
                None => lb_bin::explain::explain(&args),
            };
            match result {
                Ok(e) => match e.write_styled(&mut std::io::stdout().lock(), args.output, lb_bin::color_stdout()) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => fail(&e),
                },
                Err(e) => fail(&e),
            }
        }
        Command::Check(args) => {
            lb_bin::telemetry::init("warn", log);
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
