//! The short soak of the test suite: three seeds of 1.5 minutes each
//! against the real `hse-server` (two nodes) and `hse-devices-writer`
//! binaries (built next to this test's binary by `cargo test --workspace
//! --all-features`, or by `scripts/soak`), with some devices sending no
//! `ts_ms` (seed 1: devices 1, 6, 9; seed 6: 4, 8, 10; seed 12: 6).
//! Together the seeds inject every fault kind: seed 1 kills server node A
//! and the writer, pauses PostgreSQL and Redis, slows Redis and restarts it
//! twice, each time followed by cross-node commands and door codes; seed 6
//! restarts PostgreSQL, slows and cuts device connections; seed 12 slows
//! and cuts PostgreSQL and cuts Redis. The seeds run one after another
//! (they are CPU-heavy).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// One seed at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn soak(seed: u64) {
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let soak = PathBuf::from(env!("CARGO_BIN_EXE_hse-soak"));
    let dir = soak.parent().expect("the binary's directory").to_owned();
    for bin in ["hse-server", "hse-devices-writer"] {
        assert!(
            dir.join(bin).exists(),
            "{bin} is not built in {}: run `cargo build --all-features -p hse-server --bins` \
             (cargo test --workspace --all-features builds it)",
            dir.display()
        );
    }
    let out = Command::new(&soak)
        .args(["--seed", &seed.to_string(), "--minutes", "1.5"])
        .output()
        .expect("hse-soak runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "soak seed {seed} failed:\n{stdout}");
    assert!(stdout.contains("PASSED"), "{stdout}");
    assert!(!stdout.contains("| FAIL |"), "{stdout}");
}

#[test]
fn soak_seed_1_kills_pauses_and_commands_across_nodes_after_redis_restarts() {
    soak(1);
}

#[test]
fn soak_seed_6_restarts_postgres_and_cuts_devices() {
    soak(6);
}

#[test]
fn soak_seed_12_slows_and_cuts_the_stores() {
    soak(12);
}
