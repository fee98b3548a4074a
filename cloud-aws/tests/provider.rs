#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The provider against its simulator: idempotent create, the runner started with its JIT
//! config, delete (and its secret), list by tag, error kinds, Spot fallback, and every
//! request valid against the botocore extract.
#![cfg(feature = "sim")]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bus_schema::{ErrorKind, Network, ProviderKind, RunnerSpec, Secret};
use cloud_aws::sim::{Fault, Launch, Sim, SimConfig, SimHandle};
use cloud_aws::{AwsConfig, Capacity, CredentialSource, Credentials, FargateProvider};
use providers::{CreateRequest, InstanceStatus, Provider};
use secrecy::{ExposeSecret as _, SecretString};

const CONTROLLER: &str = "ctl-test";
const JIT: &str = "eyJqaXQiOiJzaW11bGF0ZWQtcnVubmVyLWNvbmZpZyJ9";

async fn sim(cfg: SimConfig) -> SimHandle {
    Sim::start(cfg, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap()
}

/// A sim whose runners write their env's JIT config to `dir/<pid>` and then wait.
fn launching(dir: &Path) -> SimConfig {
    SimConfig {
        launch: Some(Launch {
            program: PathBuf::from("/bin/sh"),
            args: vec![
                "-c".into(),
                format!(
                    "printf %s \"$ACTIONS_RUNNER_INPUT_JITCONFIG\" > {}/$$; exec sleep 60",
                    dir.display()
                ),
            ],
        }),
        ..SimConfig::default()
    }
}

fn config(sim: &SimHandle) -> AwsConfig {
    let s = sim.config();
    let creds = CredentialSource::Static(Credentials {
        access_key_id: s.access_key_id.clone(),
        secret_access_key: s.secret_access_key.clone(),
        session_token: None,
        expires: None,
    });
    let mut cfg = AwsConfig::new(
        &s.region,
        creds,
        &s.clusters[0],
        CONTROLLER,
        &s.task_role_arn,
        &s.task_role_id,
        s.subnets.clone(),
    )
    .with_endpoint(&sim.base_url());
    cfg.security_groups = s.security_groups.clone();
    cfg.default_security_groups = vec![s.security_groups[0].clone()];
    cfg.request_timeout_secs = 2;
    cfg
}

fn request(name: &str) -> CreateRequest {
    CreateRequest {
        controller_id: CONTROLLER.into(),
        tenant: "acme".into(),
        registration: "acme-org".into(),
        runner_name: name.into(),
        spec: RunnerSpec {
            provider: ProviderKind::AwsFargate,
            region: None,
            cpu_millis: 1000,
            memory_mib: 2048,
            image: "ghcr.io/actions/actions-runner:2.330.0".into(),
            network: Network::default(),
            disk_bucket: None,
            dind: false,
            runner_group_id: 1,
            labels: vec!["serverless-hosted-runner".into()],
            charge_labels: vec!["team-a".into(), "cost:7".into()],
            max_runtime_secs: 3600,
        },
        jit_config: Secret::new(JIT.to_owned()),
    }
}

async fn until<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn count(sim: &SimHandle, target: &str) -> usize {
    sim.calls().iter().filter(|c| c.ends_with(target)).count()
}

#[tokio::test]
async fn create_is_idempotent_and_the_runner_starts_with_its_jit_config() {
    let out = tempfile::tempdir().unwrap();
    let sim = sim(launching(out.path())).await;
    let p = FargateProvider::new(config(&sim)).unwrap();
    let req = request("shr-acme-101-1");

    // Two racing creates and a third one later: one task.
    let (a, b) = tokio::join!(p.create(&req), p.create(&req));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.id, b.id);
    let c = p.create(&req).await.unwrap();
    assert_eq!(c.id, a.id);
    assert_eq!(sim.tasks().len(), 1);
    assert_eq!(a.runner_name, "shr-acme-101-1");
    assert_eq!(a.tags["shr-controller"], CONTROLLER);
    assert_eq!(a.tags["shr-charge"], "team-a_cost:7");

    // The runner process got the JIT config through the secret, in its env.
    let written = until("the runner to start", async || {
        std::fs::read_dir(out.path())
            .unwrap()
            .next()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .filter(|s| !s.is_empty())
    })
    .await;
    assert_eq!(written, JIT);
    assert_eq!(sim.launched().len(), 1);
    let running = until("Running", async || {
        p.get(&req.runner_name)
            .await
            .unwrap()
            .filter(|i| i.status == InstanceStatus::Running)
    })
    .await;
    assert_eq!(running.id, a.id);

    // Nothing a describe call returns holds the JIT config.
    for task in sim.tasks() {
        assert!(!task.overrides.to_string().contains(JIT));
    }
    // The secret holds it, tagged with our tags and readable by this task's session only.
    let secrets = sim.secrets();
    assert_eq!(secrets.len(), 1);
    assert_eq!(secrets[0].value.expose_secret(), JIT);
    assert_eq!(secrets[0].tags["shr-runner"], "shr-acme-101-1");
    let task = &sim.tasks()[0];
    assert_eq!(
        secrets[0].tags["shr-reader"],
        format!("{}:{}", sim.config().task_role_id, task.id)
    );
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[tokio::test]
async fn delete_stops_the_task_and_deletes_the_secret_and_missing_is_success() {
    let out = tempfile::tempdir().unwrap();
    let sim = sim(launching(out.path())).await;
    let p = FargateProvider::new(config(&sim)).unwrap();
    let req = request("shr-acme-102-1");
    p.create(&req).await.unwrap();
    until("the runner to start", async || {
        (sim.launched().len() == 1).then_some(())
    })
    .await;
    let pid = sim.tasks()[0].pid.unwrap();

    p.delete(&req.runner_name).await.unwrap();
    assert!(sim.secrets().is_empty());
    assert!(sim.live_tasks().is_empty());
    assert_eq!(
        sim.tasks()[0].stopped_reason.as_deref(),
        Some("shr: runner deleted")
    );
    // The runner process is gone too.
    until("the runner process to end", async || {
        (!Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    })
    .await;
    // A task stopped by our delete counts as gone.
    assert!(p.get(&req.runner_name).await.unwrap().is_none());
    assert!(p.list().await.unwrap().is_empty());
    // Deleting again, or a runner that never existed, succeeds.
    p.delete(&req.runner_name).await.unwrap();
    p.delete("shr-acme-never-1").await.unwrap();
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[tokio::test]
async fn a_runner_that_exits_is_reported_stopped_until_deleted() {
    let sim = sim(SimConfig {
        launch: Some(Launch {
            program: PathBuf::from("/bin/sh"),
            args: vec!["-c".into(), "exit 0".into()],
        }),
        ..SimConfig::default()
    })
    .await;
    let p = FargateProvider::new(config(&sim)).unwrap();
    let req = request("shr-acme-103-1");
    p.create(&req).await.unwrap();
    let stopped = until("Stopped", async || {
        p.get(&req.runner_name)
            .await
            .unwrap()
            .filter(|i| i.status == InstanceStatus::Stopped)
    })
    .await;
    assert_eq!(stopped.runner_name, req.runner_name);
    assert_eq!(
        p.list().await.unwrap().len(),
        1,
        "the sweep must still see it"
    );
    assert_eq!(sim.secrets().len(), 1);
    p.delete(&req.runner_name).await.unwrap();
    assert!(sim.secrets().is_empty());
}

#[tokio::test]
async fn list_returns_only_this_controllers_tasks() {
    let sim = sim(SimConfig::default()).await;
    let p = FargateProvider::new(config(&sim)).unwrap();
    for name in ["shr-acme-201-1", "shr-acme-202-1"] {
        p.create(&request(name)).await.unwrap();
    }
    sim.create_orphan(
        &sim.config().clusters[0],
        BTreeMap::from([
            ("shr-controller".to_owned(), "someone-else".to_owned()),
            ("shr-runner".to_owned(), "shr-other-1-1".to_owned()),
        ]),
    );
    sim.create_orphan(&sim.config().clusters[0], BTreeMap::new());
    let mut names: Vec<String> = p
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.runner_name)
        .collect();
    names.sort();
    assert_eq!(names, ["shr-acme-201-1", "shr-acme-202-1"]);
    let orphan = p.get("shr-other-1-1").await.unwrap();
    assert!(orphan.is_none(), "another controller's task is not ours");
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[tokio::test]
async fn errors_map_to_kinds() {
    let sim = sim(SimConfig::default()).await;
    let p = FargateProvider::new(config(&sim)).unwrap();

    sim.inject(Fault::Throttle, 1);
    let e = p.create(&request("shr-acme-301-1")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(e.to_string().contains("ThrottlingException"), "{e}");

    sim.inject(Fault::ServerError, 1);
    let e = p.list().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(e.to_string().contains("ServerException"), "{e}");

    sim.inject(Fault::Slow(Duration::from_secs(4)), 1);
    let e = p.get("shr-acme-301-1").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "a timeout: {e}");

    // Refused before any call: no Fargate size covers it, a subnet or group off the allow-list, dind.
    let calls = sim.calls().len();
    let mut bad = request("shr-acme-302-1");
    bad.spec.memory_mib = 128 * 1024;
    assert_eq!(
        p.create(&bad).await.unwrap_err().kind(),
        ErrorKind::Permanent
    );
    let mut bad = request("shr-acme-302-1");
    bad.spec.network.subnet = Some("subnet-elsewhere".into());
    assert_eq!(
        p.create(&bad).await.unwrap_err().kind(),
        ErrorKind::Permanent
    );
    let mut bad = request("shr-acme-302-1");
    bad.spec.network.security_group = Some("sg-elsewhere".into());
    assert_eq!(
        p.create(&bad).await.unwrap_err().kind(),
        ErrorKind::Permanent
    );
    let mut bad = request("shr-acme-302-1");
    bad.spec.dind = true;
    assert_eq!(
        p.create(&bad).await.unwrap_err().kind(),
        ErrorKind::Permanent
    );
    assert_eq!(sim.calls().len(), calls);

    // A label-chosen subnet and group from the allow-lists are used; the `subnet-<id>`
    // label arrives without its prefix.
    let mut ok = request("shr-acme-303-1");
    let label_value = sim.config().subnets[1].strip_prefix("subnet-").unwrap();
    ok.spec.network.subnet = Some(label_value.to_owned());
    ok.spec.network.security_group = Some(sim.config().security_groups[1].clone());
    p.create(&ok).await.unwrap();
    let vpc = &sim.tasks()[0].overrides;
    assert!(vpc.is_object());

    // Refused by the service: a wrong secret key, a missing cluster.
    let mut wrong = config(&sim);
    wrong.credentials = CredentialSource::Static(Credentials {
        access_key_id: sim.config().access_key_id.clone(),
        secret_access_key: SecretString::from("wrong"),
        session_token: None,
        expires: None,
    });
    let e = FargateProvider::new(wrong)
        .unwrap()
        .list()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Permanent);
    assert!(e.to_string().contains("InvalidSignatureException"), "{e}");
    let mut missing = config(&sim);
    missing.cluster = "nope".into();
    let e = FargateProvider::new(missing)
        .unwrap()
        .list()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Permanent);
    assert!(e.to_string().contains("ClusterNotFoundException"), "{e}");
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[tokio::test]
async fn spot_without_capacity_falls_back_to_on_demand_in_the_same_create() {
    let sim = sim(SimConfig::default()).await;
    let mut cfg = config(&sim);
    cfg.capacity = Capacity::SpotWithFallback;
    let p = FargateProvider::new(cfg).unwrap();

    p.create(&request("shr-acme-401-1")).await.unwrap();
    assert_eq!(sim.tasks()[0].capacity_provider, "FARGATE_SPOT");
    assert_eq!(count(&sim, ".RunTask"), 1);

    sim.set_spot_capacity(false);
    let i = p.create(&request("shr-acme-402-1")).await.unwrap();
    let task = sim.tasks().into_iter().find(|t| t.arn == i.id).unwrap();
    assert_eq!(task.capacity_provider, "FARGATE");
    assert_eq!(
        count(&sim, ".RunTask"),
        3,
        "one Spot attempt, one on-demand"
    );
    assert_eq!(sim.secrets().len(), 2);

    // Spot only: no capacity is a quota error, and nothing is started.
    let mut cfg = config(&sim);
    cfg.capacity = Capacity::Spot;
    let spot_only = FargateProvider::new(cfg).unwrap();
    let e = spot_only
        .create(&request("shr-acme-403-1"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Quota, "{e}");
    assert_eq!(sim.live_tasks().len(), 2);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[tokio::test]
async fn a_size_between_fargate_pairs_runs_on_the_smallest_that_covers_it() {
    let sim = sim(SimConfig::default()).await;
    let p = FargateProvider::new(config(&sim)).unwrap();
    for (runner, cpu, memory, want) in [
        ("shr-acme-701-1", 2000, 2048, ("2048", "4096")),
        ("shr-acme-702-1", 1000, 1024, ("1024", "2048")),
        ("shr-acme-703-1", 3000, 4096, ("4096", "8192")),
        ("shr-acme-704-1", 500, 4096, ("512", "4096")),
    ] {
        let mut r = request(runner);
        r.spec.cpu_millis = cpu;
        r.spec.memory_mib = memory;
        let i = p.create(&r).await.unwrap();
        let task = sim.tasks().into_iter().find(|t| t.arn == i.id).unwrap();
        assert_eq!((task.cpu.as_str(), task.memory.as_str()), want, "{runner}");
    }
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[tokio::test]
async fn capacity_is_chosen_per_registration() {
    let sim = sim(SimConfig::default()).await;
    sim.set_spot_capacity(false);
    let mut cfg = config(&sim);
    cfg.capacity = Capacity::OnDemand;
    cfg.capacity_by_registration = [
        ("acme-spot".to_owned(), Capacity::SpotWithFallback),
        ("acme-spot-only".to_owned(), Capacity::Spot),
    ]
    .into();
    let p = FargateProvider::new(cfg).unwrap();
    let for_registration = |registration: &str, runner: &str| {
        let mut r = request(runner);
        r.registration = registration.into();
        r
    };

    // A registration without an override: on-demand, no Spot attempt.
    let i = p.create(&request("shr-acme-601-1")).await.unwrap();
    assert_eq!(count(&sim, ".RunTask"), 1);
    let task = sim.tasks().into_iter().find(|t| t.arn == i.id).unwrap();
    assert_eq!(task.capacity_provider, "FARGATE");

    // Spot with fallback: a Spot attempt, then on-demand within the same create.
    let i = p
        .create(&for_registration("acme-spot", "shr-acme-602-1"))
        .await
        .unwrap();
    assert_eq!(count(&sim, ".RunTask"), 3);
    let task = sim.tasks().into_iter().find(|t| t.arn == i.id).unwrap();
    assert_eq!(task.capacity_provider, "FARGATE");

    // Spot only: a quota error; with capacity back, it runs on Spot. (A new runner: the
    // simulator replays a reused clientToken's answer, failures included.)
    let e = p
        .create(&for_registration("acme-spot-only", "shr-acme-603-1"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Quota, "{e}");
    assert_eq!(sim.live_tasks().len(), 2);
    sim.set_spot_capacity(true);
    let i = p
        .create(&for_registration("acme-spot-only", "shr-acme-603-2"))
        .await
        .unwrap();
    let task = sim.tasks().into_iter().find(|t| t.arn == i.id).unwrap();
    assert_eq!(task.capacity_provider, "FARGATE_SPOT");
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[tokio::test]
async fn a_task_whose_secret_is_never_granted_stops_without_a_runner() {
    let out = tempfile::tempdir().unwrap();
    let mut cfg = launching(out.path());
    cfg.secret_wait = Duration::from_millis(200);
    // Tasks run under another role id than the provider tags the secret for.
    cfg.task_role_id = "AROAANOTHERROLE".into();
    let sim = sim(cfg).await;
    let mut pc = config(&sim);
    pc.task_role_id = "AROASIMULATORTASKROLE".into();
    let p = FargateProvider::new(pc).unwrap();
    let req = request("shr-acme-501-1");
    p.create(&req).await.unwrap();
    let stopped = until("Stopped", async || {
        sim.tasks().into_iter().find(|t| t.last_status == "STOPPED")
    })
    .await;
    assert_eq!(stopped.exit_code, Some(70));
    assert_eq!(
        sim.exited_without_runner(),
        1,
        "the entrypoint never reached run.sh"
    );
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn a_failed_grant_is_retried_within_the_create_and_the_runner_starts() {
    let out = tempfile::tempdir().unwrap();
    let sim = sim(launching(out.path())).await;
    let p = FargateProvider::new(config(&sim)).unwrap();
    // The task is running and waiting for its grant: a redelivered create may come too late.
    sim.inject_for("TagResource", Fault::ServerError, 3);
    p.create(&request("shr-acme-701-1")).await.unwrap();
    assert_eq!(count(&sim, "RunTask"), 1);
    assert_eq!(
        count(&sim, "TagResource"),
        4,
        "three failures, then the grant"
    );
    let seen = until("the runner to get its JIT config", async || {
        std::fs::read_dir(out.path())
            .unwrap()
            .next()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .filter(|s| !s.is_empty())
    })
    .await;
    assert_eq!(seen, JIT);
    assert_eq!(sim.exited_without_runner(), 0);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}
