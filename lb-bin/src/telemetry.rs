//! Logging: `tracing` to stderr, filtered by `LB_LOG` (or `RUST_LOG`), default `warn` (`info`
//! for long-running commands); as text (colours only on a terminal) or as one JSON object
//! per line (`--log-format json`), for log collectors.

use tracing_subscriber::EnvFilter;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, target, message and fields.
    Json,
}

/// Installs the global subscriber with `default` as the level when `LB_LOG`/`RUST_LOG` is unset.
pub fn init(default: &str, format: LogFormat) {
    let filter = std::env::var("LB_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).try_init(),
    };
}
