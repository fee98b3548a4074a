//! The chaos suite on a 3-node NATS cluster in the tenant agents placement
//! (`shr-lab demo --placement agents --nats-nodes 3 --chaos`): every node runs the tenancy
//! security configuration (the same generated accounts and nkey users), every stream and
//! bucket is on 3 replicas, 500 jobs for 3 tenants arrive on one shared repository. Each
//! process runs under its own identity and runs twice: webhook (behind a balancer), central
//! (poller and scheduler) and one agent (provisioner and reaper) per tenant with that
//! tenant's own cloud account, GitHub token and JIT key pair. Processes are killed with
//! `SIGKILL` and restarted (every kind at least once), runners are killed, one NATS node is
//! killed for good a third of the way in, each cloud fails 20% of its calls. Nothing may be
//! lost, doubled or leaked, and every job must have run on a runner its own tenant's agent
//! created.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use shr_lab::bins::product_binary;
use shr_lab::chaos::{ChaosOptions, run_chaos};
use shr_lab::placement::Placement;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_agents_on_a_three_node_cluster_losing_a_node_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let shr = product_binary().unwrap();
    let mut options = ChaosOptions::new(500, dir.path().join("chaos"), shr);
    options.lab_binary = Some(env!("CARGO_BIN_EXE_shr-lab").into());
    options.seed = 5;
    options.nats_nodes = 3;
    options.placement = Placement::Agents;
    options.tenants = 3;
    options.timeout = Duration::from_secs(540);
    let report = run_chaos(options).await.unwrap();
    let tenancy = report
        .tenancy
        .clone()
        .expect("the agents placement checks tenancy");
    println!("{}\n{tenancy}\n{report}", report.summary);
    assert_eq!(
        report.anonymous_refused,
        Some(true),
        "the nodes run the security accounts: {report}"
    );
    assert!(report.kills > 0, "{report}");
    let central = ["webhook", "central"];
    for kind in central {
        assert!(
            report.killed_kinds.contains(kind),
            "{kind} never killed: {report}"
        );
    }
    assert_eq!(
        report.killed_kinds, report.kinds,
        "every kind of process killed at least once: {report}"
    );
    assert_eq!(
        report.kinds.len(),
        2 + 3,
        "webhook, central, 3 agents: {report}"
    );
    assert_eq!(report.nats_nodes_lost, 1, "{report}");
    assert_eq!(
        report.nats_restarts, 0,
        "the lost node stays down: {report}"
    );
    assert_eq!(report.unexpected_exits, 0, "{report}");
    assert_eq!(report.summary.jobs, 500);
    assert_eq!(tenancy.checked, 500, "{tenancy}");
    assert_eq!(tenancy.own, 500, "{tenancy}");
    assert!(tenancy.violations.is_empty(), "{:?}", tenancy.violations);
    assert!(report.ok(), "{}\n{report}", report.summary);
}
