//! Installs the tracing subscriber; libraries only emit events.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs a global subscriber writing to stdout, filtered by `RUST_LOG`
/// (default `info`), in colour only on a terminal (no escape codes in files
/// or pipes). Calling it twice is harmless.
pub fn init(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
