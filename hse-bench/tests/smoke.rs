//! The harness in `--smoke` mode (tiny sizes, seconds), so it cannot rot.
//! It asserts that every figure was produced beside its baseline and that
//! every device load stored exactly what it sent and had acknowledged;
//! never anything about speed. Needs PostgreSQL and Redis
//! (`scripts/services`; `HSE_DATABASE_URL`, `HSE_REDIS_URL`).

use std::process::Command;

#[test]
fn smoke_run_produces_every_figure_with_its_baseline_and_loses_nothing() {
    let json = std::env::temp_dir().join(format!("hse-bench-smoke-{}.json", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_hse-bench"))
        .args(["--smoke", "--json"])
        .arg(&json)
        .output()
        .expect("hse-bench starts");
    assert!(
        output.status.success(),
        "hse-bench --smoke failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("JSON written")).expect("valid JSON");
    let _ = std::fs::remove_file(&json);

    let figures = report["figures"].as_array().expect("figures");
    for section in [
        "ingest",
        "latency",
        "chart",
        "connections",
        "api",
        "bookings",
    ] {
        assert!(
            figures.iter().any(|f| f["section"] == section),
            "no figure for {section}"
        );
    }
    for f in figures {
        let (value, baseline) = (f["value"].as_f64(), f["baseline"].as_f64());
        assert!(value.is_some_and(f64::is_finite), "no value: {f}");
        assert!(baseline.is_some_and(|b| b > 0.0), "no baseline: {f}");
        assert!(
            !f["baseline_name"].as_str().unwrap_or("").is_empty(),
            "unnamed baseline: {f}"
        );
    }
    let loads = report["loads"].as_array().expect("loads");
    assert!(loads.len() >= 4, "ingest and three latency loads");
    for l in loads {
        assert!(l["sent"].as_u64() > Some(0), "nothing sent: {l}");
        assert_eq!(l["sent"], l["acked"], "sent != acked: {l}");
        assert_eq!(l["acked"], l["stored"], "acked != stored: {l}");
        assert_eq!(l["nacked"], 0, "nacks: {l}");
    }
}
