//! The chaos suite on a 3-node NATS cluster (`shr-lab demo --chaos --nats-nodes 3`): every
//! stream and bucket on 3 replicas, 500 jobs, actors as separate processes killed with
//! `SIGKILL` and restarted (two webhooks behind a balancer, two each of pollers, schedulers,
//! provisioners and reapers), one NATS node killed for good a third of the way in, a cloud
//! that fails 20% of its calls. Nothing may be lost, doubled or leaked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use shr_lab::bins::product_binary;
use shr_lab::chaos::{ChaosOptions, run_chaos};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_on_a_three_node_cluster_losing_a_node_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let shr = product_binary().unwrap();
    let mut options = ChaosOptions::new(500, dir.path().join("chaos"), shr);
    options.lab_binary = Some(env!("CARGO_BIN_EXE_shr-lab").into());
    options.seed = 5;
    options.nats_nodes = 3;
    options.timeout = Duration::from_secs(540);
    let report = run_chaos(options).await.unwrap();
    println!("{}\n{report}", report.summary);
    assert!(report.kills > 0, "{report}");
    assert_eq!(report.nats_nodes_lost, 1, "{report}");
    assert_eq!(
        report.nats_restarts, 0,
        "the lost node stays down: {report}"
    );
    assert_eq!(report.unexpected_exits, 0, "{report}");
    assert_eq!(report.summary.jobs, 500);
    assert!(report.ok(), "{}\n{report}", report.summary);
}
