//! Installs the tracing subscriber; libraries only emit events and spans.
//!
//! In JSON (`HSE_LOG_FORMAT=json`) each line is one event: its own
//! `fields`, its innermost span as `span` and every enclosing span, outermost
//! first, as `spans`, each with its fields (an HTTP request's `request_id`,
//! `http.route` and `http.status`; a device session's `device.id` and
//! `transport`; a writer batch's `batch.size`). In text the spans prefix
//! the line, `http.request{request_id=… http.route=…}:`.

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
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
}
