//! Unit tests of the configuration: defaults, named errors, ranges.

use std::collections::HashMap;

use super::*;

fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::from_lookup(|k| map.get(k).cloned())
}

#[test]
fn defaults_run_the_embedded_server_on_localhost() {
    let c = config(&[]).unwrap();
    assert_eq!(c.http_addr.to_string(), "127.0.0.1:8080");
    assert!(c.database_url.is_none() && c.redis_url.is_none());
    assert_eq!(c.shutdown_timeout, Duration::from_secs(10));
    assert_eq!(c.stay_interval, Duration::from_secs(30));
    assert_eq!(c.connections, crate::connections::Limits::default());
    assert_eq!(c.device_hello_timeout, Duration::from_secs(10));
}

#[test]
fn a_bad_value_names_its_variable() {
    for (var, value) in [
        ("HSE_HTTP_ADDR", "localhost"),
        ("HSE_HTTP_ADDR", "no-such-host.invalid:8080"),
        ("HSE_DEVICE_TCP_ADDR", "127.0.0.1:99999"),
        ("HSE_DATABASE_URL", "mysql://x"),
        ("HSE_REDIS_URL", "http://x"),
        ("HSE_LOG_FORMAT", "xml"),
        ("HSE_SHUTDOWN_TIMEOUT_S", "-1"),
        ("HSE_PRINCIPAL_CACHE_MS", "soon"),
        ("HSE_PLACEMENT_CACHE_MS", "-5"),
        ("HSE_JWT_SIGNING_KEY", "abcd"),
        ("HSE_ROLES", "api,cooking"),
        ("HSE_ROLES", ","),
        ("HSE_GRPC_ADDR", "nowhere"),
        ("HSE_GRPC_TOKEN", "short"),
        ("HSE_STAY_INTERVAL_MS", "fast"),
        ("HSE_STAY_INTERVAL_MS", "99"),
        ("HSE_STAY_INTERVAL_MS", "3600001"),
        ("HSE_HEADER_TIMEOUT_MS", "0"),
        ("HSE_IDLE_TIMEOUT_MS", "soon"),
        ("HSE_MAX_CONNECTIONS", "0"),
        ("HSE_MAX_CONNECTIONS_PER_IP", "-1"),
        ("HSE_DEVICE_HELLO_TIMEOUT_MS", "0"),
    ] {
        let err = config(&[(var, value)]).unwrap_err();
        assert_eq!(err.variable, var);
    }
}

#[test]
fn ingest_settings_default_and_refuse_values_out_of_range() {
    let c = config(&[]).unwrap();
    assert_eq!(c.ingest.max_lag, Duration::from_secs(5));
    assert_eq!(c.ingest.enqueue_timeout, Duration::from_secs(5));
    assert_eq!(c.ingest.memory_queue_bytes, 256 * 1024 * 1024);
    let c = config(&[("HSE_INGEST_MAX_LAG_MS", "250")]).unwrap();
    assert_eq!(c.ingest.max_lag, Duration::from_millis(250));
    for (var, value) in [
        ("HSE_INGEST_MAX_LAG_MS", "0"),
        ("HSE_INGEST_MAX_LAG_MS", "soon"),
        ("HSE_INGEST_ENQUEUE_TIMEOUT_MS", "60001"),
        ("HSE_INGEST_MEMORY_QUEUE_MB", "0"),
    ] {
        assert_eq!(config(&[(var, value)]).unwrap_err().variable, var);
    }
}

#[test]
fn the_stay_interval_is_read_in_milliseconds() {
    let c = config(&[("HSE_STAY_INTERVAL_MS", "500")]).unwrap();
    assert_eq!(c.stay_interval, Duration::from_millis(500));
}

#[test]
fn roles_default_to_everything_and_parse_subsets() {
    let all = config(&[]).unwrap().roles;
    assert!(all.api && all.grpc && all.ingest && all.workers);
    let ingest = Roles::parse("ingest, workers").unwrap();
    assert!(!ingest.api && !ingest.grpc && ingest.ingest && ingest.workers);
}

#[test]
fn notification_channels_need_their_companions_and_sane_values() {
    let none = config(&[]).unwrap();
    assert!(none.webhook.is_none() && none.smtp.is_none());
    let both = config(&[
        ("HSE_WEBHOOK_URL", "http://hooks.local:9000/hse"),
        ("HSE_WEBHOOK_SECRET", "0123456789abcdef-secret"),
        ("HSE_SMTP_ADDR", "localhost:2525"),
        ("HSE_SMTP_FROM", "bookings@hotel.example"),
    ])
    .unwrap();
    assert!(both.webhook.is_some() && both.smtp.is_some());
    assert!(!format!("{both:?}").contains("0123456789abcdef"));
    for (vars, variable) in [
        (
            &[("HSE_WEBHOOK_URL", "http://h/")][..],
            "HSE_WEBHOOK_SECRET",
        ),
        (
            &[
                ("HSE_WEBHOOK_URL", "https://h/"),
                ("HSE_WEBHOOK_SECRET", "0123456789abcdef"),
            ][..],
            "HSE_WEBHOOK_URL",
        ),
        (
            &[
                ("HSE_WEBHOOK_URL", "http://h/"),
                ("HSE_WEBHOOK_SECRET", "short"),
            ][..],
            "HSE_WEBHOOK_SECRET",
        ),
        (&[("HSE_SMTP_ADDR", "localhost")][..], "HSE_SMTP_ADDR"),
        (&[("HSE_SMTP_ADDR", "localhost:25")][..], "HSE_SMTP_FROM"),
        (
            &[
                ("HSE_SMTP_ADDR", "localhost:25"),
                ("HSE_SMTP_FROM", "nobody"),
            ][..],
            "HSE_SMTP_FROM",
        ),
    ] {
        assert_eq!(config(vars).unwrap_err().variable, variable, "{vars:?}");
    }
}

#[test]
fn grpc_off_loopback_needs_a_token() {
    let open = config(&[("HSE_GRPC_ADDR", "0.0.0.0:50051")]).unwrap_err();
    assert_eq!(open.variable, "HSE_GRPC_TOKEN");
    let token = "t".repeat(32);
    let guarded = config(&[
        ("HSE_GRPC_ADDR", "0.0.0.0:50051"),
        ("HSE_GRPC_TOKEN", &token),
    ])
    .unwrap();
    assert!(guarded.grpc_token.is_some() && !format!("{guarded:?}").contains(&token));
    assert!(config(&[]).unwrap().grpc_token.is_none());
}

#[test]
fn urls_are_never_printed() {
    let c = config(&[
        ("HSE_DATABASE_URL", "postgres://u:hunter2@h/db"),
        ("HSE_DATABASE_MIGRATION_URL", "postgres://o:hunter3@h/db"),
    ])
    .unwrap();
    assert!(!format!("{c:?}").contains("hunter2"));
    assert!(!format!("{c:?}").contains("hunter3"));
}
