//! Logging: `tracing` to stderr, filtered by `LB_LOG` (or `RUST_LOG`), default `warn` (`info` for long-running commands).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber with `default` as the level when `LB_LOG`/`RUST_LOG` is unset.
pub fn init(default: &str) {
    let filter = std::env::var("LB_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).try_init();
}
