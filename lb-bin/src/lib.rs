//! The `lb` binary's library: its subcommands, its error type and its logging set-up.
//!
//! `main.rs` stays small: it parses the command line and calls into here. Every function
//! returns its errors to `main`, which alone decides exit codes.

pub mod check;
pub mod claims;
pub mod cli;
pub mod cluster;
pub mod controller;
pub mod crds;
pub mod demo;
pub mod events;
pub mod explain;
pub mod group;
pub mod host;
pub mod leader;
pub mod manifests;
pub mod membership;
pub mod metrics;
pub mod run;
pub mod speaker;
pub mod state;
pub mod telemetry;

use lbcore::config::Diagnostic;

/// Errors the `lb` subcommands return.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid; every problem found is listed.
    #[error("invalid configuration ({} problem(s))", .0.len())]
    Config(Vec<Diagnostic>),
    /// Writing output failed.
    #[error("cannot write output: {0}")]
    Io(#[from] std::io::Error),
    /// An announcer cannot work (e.g. a missing capability).
    #[error("{0}")]
    Announce(lbcore::AnnounceError),
    /// A flag or environment value is invalid.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// One message per line, for stderr.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Error::Config(d) => d.iter().map(|d| d.to_string()).collect(),
            other => vec![other.to_string()],
        }
    }

    /// A stable, low-cardinality label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::Io(_) => "io",
            Error::Announce(_) => "announce",
            Error::Invalid(_) => "invalid",
        }
    }
}

/// Whether output for people may use colours: stdout is a terminal and `NO_COLOR` is unset
/// (<https://no-color.org>).
pub fn color_stdout() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stdout()) && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
