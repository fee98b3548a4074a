//! The chaos suite at CI size: actors as separate processes, killed with `SIGKILL` and
//! restarted while 300 jobs run, one NATS restart, a cloud that fails 20% of its calls.
//! Nothing may be lost, doubled or leaked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use shr_lab::bins::product_binary;
use shr_lab::chaos::{ChaosOptions, run_chaos};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_run_loses_nothing_and_leaks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // The role processes are the product binary, built as operators build it.
    let shr = product_binary().unwrap();
    let mut options = ChaosOptions::new(300, dir.path().join("chaos"), shr);
    options.lab_binary = Some(env!("CARGO_BIN_EXE_shr-lab").into());
    options.seed = 42;
    options.timeout = Duration::from_secs(480);
    let report = run_chaos(options).await.unwrap();
    println!("{}\n{report}", report.summary);
    assert!(report.kills > 0, "{report}");
    assert_eq!(report.nats_restarts, 1, "{report}");
    assert_eq!(report.unexpected_exits, 0, "{report}");
    assert!(report.ok(), "{}\n{report}", report.summary);
}
