//! High availability and live operations, end to end:
//! - a registration applied with `shr registration apply` while the system runs gets its jobs
//!   without a restart; removed, it drains: its running jobs finish, nothing new is
//!   provisioned for it, its runners are reaped, then its entry goes;
//! - a registration file that does not validate is refused with exit code 64 naming file,
//!   field and reason, and nothing is stored;
//! - a registration applied with another tenant's credentials is refused by the NATS server.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bus_schema::{LiveRegistration, LiveState, RunnerState, subject};
use shr::registration_cmd::{RegistrationCommand, Target, run};
use shr_lab::harness::{Harness, HarnessOptions, TENANT};
use shr_nats::security::{self, Role};

mod common;
use common::eventually;

const LIVE: &str = "demo-live";
const LIVE_LABEL: &str = "live-ci";

/// A registration file: repository scope `demo-org/app` on the harness's GitHub simulator,
/// accepting `live-ci` jobs.
fn live_file(h: &Harness, dir: &Path, name: &str, tenant: &str) -> PathBuf {
    let pat = h.options.work_dir.join("secrets").join("github-token");
    let text = format!(
        r#"[[registrations]]
name = "{name}"
tenant = "{tenant}"
scope = "repo"
url = "https://github.com/demo-org/app"
api_url = "{api}"
auth = {{ pat = "file:{pat}" }}
labels = ["{LIVE_LABEL}"]
detection = "webhook+poll"
poll_interval_secs = 5
jit_per_minute = 6000
"#,
        api = h.sim.base_url(),
        pat = pat.display(),
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn target(config: &Path) -> Target {
    Target {
        config: config.to_owned(),
        nats_url: None,
    }
}

fn queue_live(h: &mut Harness, n: usize) -> Vec<u64> {
    let mut ids = Vec::new();
    for i in 0..n {
        let queued = h.sim.queue_job(simulators::github::NewJob {
            repo: "demo-org/app".into(),
            labels: vec![LIVE_LABEL.into()],
            name: Some(format!("live-{i}")),
            run_id: None,
        });
        h.jobs.insert(queued.job_id);
        ids.push(queued.job_id);
    }
    ids
}

async fn live_entry(h: &Harness, tenant: &str, name: &str) -> Option<(LiveRegistration, u64)> {
    let ctx = &h.running.as_ref().unwrap().ctx;
    let records: shr_nats::Records<LiveRegistration> =
        shr_nats::Records::new(ctx.bus.registrations.clone());
    let key = subject::registration_key(tenant, name).unwrap();
    records.get(&key).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_registration_applied_live_gets_its_jobs_and_drains_when_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = HarnessOptions::new(dir.path().join("work"));
    options.job_duration = Duration::from_secs(3);
    let mut h = Harness::start(options).await.expect("harness starts");
    let config = h.config_path.clone();

    // A file that does not validate: exit 64, nothing stored.
    let bad = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(live_file(&h, dir.path(), LIVE, TENANT)).unwrap();
    std::fs::write(&bad, text.replace("scope = \"repo\"", "scope = \"team\"")).unwrap();
    let code = run(RegistrationCommand::Apply {
        file: bad.clone(),
        target: target(&config),
    })
    .await
    .unwrap();
    assert_eq!(code, ExitCode::from(64));
    assert!(live_entry(&h, TENANT, LIVE).await.is_none());
    // The errors name the file, the field in it and the reason, with the file's own line.
    let errors = h
        .running
        .as_ref()
        .unwrap()
        .ctx
        .config()
        .live_tables(
            &std::fs::read_to_string(&bad).unwrap(),
            "bad.toml",
            &clouds::Registry,
        )
        .unwrap_err();
    let shown = errors.to_string();
    assert!(
        shown.starts_with("bad.toml: registrations[0].scope: unknown variant `team`")
            && shown.contains("(line 4)"),
        "{shown}"
    );

    // Applied while everything runs: its jobs are served, no restart.
    let file = live_file(&h, dir.path(), LIVE, TENANT);
    let code = run(RegistrationCommand::Apply {
        file,
        target: target(&config),
    })
    .await
    .unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    let ctx = h.running.as_ref().unwrap().ctx.clone();
    eventually(
        Duration::from_secs(30),
        "the live registration in the actors",
        || {
            let ctx = ctx.clone();
            async move { ctx.registration(LIVE).ok().map(|_| ()) }
        },
    )
    .await;
    let served = queue_live(&mut h, 6);
    let summary = h
        .wait_settled(Duration::from_secs(180), false)
        .await
        .unwrap();
    assert!(
        summary.ok(),
        "{summary}\n{}",
        h.explain_lost().await.unwrap()
    );
    for job in &served {
        let key = subject::job_key(TENANT, LIVE, *job).unwrap();
        let (rec, _) = ctx
            .jobs
            .get(&key)
            .await
            .unwrap()
            .expect("served by the live registration");
        assert!(!rec.runners.is_empty(), "job {job} had a runner");
    }

    // Jobs in progress, then the registration is removed: they finish, their runners are
    // reaped, a job queued after the removal gets no runner, then the entry goes.
    let running_jobs = queue_live(&mut h, 3);
    eventually(Duration::from_secs(60), "live jobs in progress", || {
        let state = h.sim.state();
        let busy = (state.jobs.iter())
            .filter(|j| running_jobs.contains(&j.id) && j.status.as_str() == "in_progress")
            .count();
        let want = running_jobs.len();
        async move { (busy == want).then_some(()) }
    })
    .await;
    let code = run(RegistrationCommand::Remove {
        name: LIVE.into(),
        target: target(&config),
    })
    .await
    .unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    let (entry, _) = live_entry(&h, TENANT, LIVE)
        .await
        .expect("draining, not gone yet");
    assert_eq!(entry.state, LiveState::Draining);
    eventually(
        Duration::from_secs(30),
        "the actors see it draining",
        || {
            let ctx = ctx.clone();
            async move { ctx.is_draining(LIVE).then_some(()) }
        },
    )
    .await;
    let late = queue_live(&mut h, 1)[0];
    let late_key = subject::job_key(TENANT, LIVE, late).unwrap();
    // Its queued event was handled: the record exists.
    eventually(Duration::from_secs(30), "the late job's record", || {
        let (ctx, key) = (ctx.clone(), late_key.clone());
        async move { ctx.jobs.get(&key).await.ok()?.map(|_| ()) }
    })
    .await;
    // The drain ends with the entry deleted, once every runner of it was reaped.
    eventually(
        Duration::from_secs(120),
        "the drained entry removed",
        || {
            let h = &h;
            async move { live_entry(h, TENANT, LIVE).await.is_none().then_some(()) }
        },
    )
    .await;
    let state = h.sim.state();
    for job in &running_jobs {
        let job = state.jobs.iter().find(|j| j.id == *job).unwrap();
        assert_eq!(job.status.as_str(), "completed", "a running job finished");
    }
    let (late_rec, _) = ctx.jobs.get(&late_key).await.unwrap().unwrap();
    assert!(
        late_rec.runners.is_empty(),
        "nothing new provisioned: {late_rec:?}"
    );
    let live_runners: Vec<_> = (h.runner_records().await.unwrap().into_iter())
        .filter(|r| r.registration == LIVE)
        .collect();
    assert!(!live_runners.is_empty());
    assert!(
        live_runners.iter().all(|r| r.state == RunnerState::Deleted),
        "{live_runners:?}"
    );
    eventually(Duration::from_secs(30), "the actors forget it", || {
        let ctx = ctx.clone();
        async move { ctx.registration(LIVE).is_err().then_some(()) }
    })
    .await;

    // The late job stays GitHub's problem (queued, no runner); take it out of the count.
    h.sim.cancel_job(late);
    h.jobs.remove(&late);
    let summary = h
        .wait_settled(Duration::from_secs(120), false)
        .await
        .unwrap();
    assert!(
        summary.ok(),
        "{summary}\n{}",
        h.explain_lost().await.unwrap()
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_registration_applied_with_another_tenants_credentials_is_refused_by_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    security::generate(&keys, &[TENANT.into(), "intruder".into()]).unwrap();
    let conf = keys.join("server.conf");
    std::fs::write(&conf, "include accounts.conf\n").unwrap();
    let server = shr_nats::NatsServer::start(shr_nats::ServerOptions {
        config: Some(conf),
        ..Default::default()
    })
    .await
    .unwrap();
    // The central placement created the bus.
    let central = shr_nats::connect_as(
        &server.url(),
        "central",
        &Role::Central.identity(
            std::fs::read_to_string(security::seed_path(&keys, &Role::Central))
                .unwrap()
                .trim()
                .to_owned()
                .into(),
        ),
    )
    .await
    .unwrap();
    let bus = shr_nats::ensure_bus(&central).await.unwrap();

    // The intruder's agent configuration knows both tenants (so validation passes) but
    // holds only the intruder's seed.
    let config = |tenant: &str| {
        let seed = security::seed_path(&keys, &Role::Agent(tenant.into()));
        let text = format!(
            r#"[controller]
id = "shr-ha"
nats_url = "{url}"
nats_nkey_seed = "file:{seed}"
actors = ["provisioner", "reaper"]
tenants = ["{tenant}"]
[tenants.{TENANT}.providers.local]
[tenants.intruder.providers.local]
"#,
            url = server.url(),
            seed = seed.display(),
        );
        let path = dir.path().join(format!("{tenant}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    };
    let intruder = config("intruder");
    let file = |name: &str, tenant: &str| {
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!(
                "[[registrations]]\nname = \"{name}\"\ntenant = \"{tenant}\"\nscope = \"org\"\n\
                 url = \"https://github.com/{name}\"\nauth = {{ pat = \"env:PAT\" }}\n"
            ),
        )
        .unwrap();
        path
    };

    // Someone else's tenant: the server refuses the write, nothing is stored.
    let started = Instant::now();
    let code = run(RegistrationCommand::Apply {
        file: file("stolen", TENANT),
        target: target(&intruder),
    })
    .await
    .unwrap();
    assert_eq!(code, ExitCode::FAILURE);
    assert!(started.elapsed() < Duration::from_secs(30));
    let key = subject::registration_key(TENANT, "stolen").unwrap();
    assert!(bus.registrations.get(key.as_str()).await.unwrap().is_none());

    // Its own tenant: stored, listed, removed (draining).
    let code = run(RegistrationCommand::Apply {
        file: file("own", "intruder"),
        target: target(&intruder),
    })
    .await
    .unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    let key = subject::registration_key("intruder", "own").unwrap();
    let stored = bus.registrations.get(key.as_str()).await.unwrap().unwrap();
    let entry: LiveRegistration = bus_schema::decode(&stored).unwrap();
    assert_eq!(
        (entry.tenant.as_str(), entry.state),
        ("intruder", LiveState::Active)
    );
    let code = run(RegistrationCommand::Remove {
        name: "own".into(),
        target: target(&intruder),
    })
    .await
    .unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    let stored = bus.registrations.get(key.as_str()).await.unwrap().unwrap();
    let entry: LiveRegistration = bus_schema::decode(&stored).unwrap();
    assert_eq!(entry.state, LiveState::Draining);
}
