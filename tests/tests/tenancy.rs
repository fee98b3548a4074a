//! The centralized placement on the shipped NATS security configuration: a central process
//! (webhook, poller, scheduler) and a tenant agent (provisioners, reaper, sweep) each
//! connect under their own nkey identity to a nats-server running the generated config.
//! Jobs flow end to end; a runner event for the agent's runner forged by another tenant
//! changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::sync::Arc;
use std::time::{Duration, Instant};

use bus_schema::{ProviderKind, ReapReason, RunnerDeleted, RunnerEvent, RunnerFailed, subject};
use registration::Actor;
use shr_lab::demo::LABEL_SETS;
use shr_lab::harness::{Harness, HarnessOptions, REGISTRATION, TENANT};
use shr_nats::security::{self, Role};

mod common;
use common::eventually;

const OTHER: &str = "intruder";

/// Starts the tenant agent: the harness's configuration with the agent's actors, tenant and
/// seed.
async fn start_agent(h: &Harness, keys: &std::path::Path) -> shr::wiring::Running {
    let central_seed = security::seed_path(keys, &Role::Central);
    let agent_seed = security::seed_path(keys, &Role::Agent(TENANT.into()));
    let text = std::fs::read_to_string(&h.config_path).unwrap();
    let text = text
        .lines()
        .map(|line| {
            if line.starts_with("actors = ") {
                format!("actors = [\"provisioner\", \"reaper\"]\ntenants = [\"{TENANT}\"]")
            } else {
                line.replace(
                    &central_seed.display().to_string(),
                    &agent_seed.display().to_string(),
                )
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains("agent-demo.nk"), "{text}");
    let path = h.options.work_dir.join("agent.toml");
    std::fs::write(&path, text).unwrap();
    let config = registration::Config::load(&path, &clouds::Registry).unwrap();
    shr::wiring::start(
        Arc::new(config),
        shr::wiring::StartOptions {
            nats_url: h.nats_url.clone(),
            holder_id: "agent-demo-1".into(),
            work_dir: h.options.work_dir.clone(),
            local_runner: Some(shr_lab::harness::runner_program(&h.options).unwrap()),
            webhook_listener: None,
            sweep_interval: Duration::from_secs(2),
        },
    )
    .await
    .unwrap()
}

/// Publishes, as tenant `OTHER`, runner events on its own subject that name `runner` of
/// TENANT: once with TENANT in the payload, once with its own. Returns the stream sequences.
async fn forge_events(h: &Harness, keys: &std::path::Path, runner: &str, job_id: u64) -> Vec<u64> {
    let role = Role::Agent(OTHER.into());
    let seed = std::fs::read_to_string(security::seed_path(keys, &role)).unwrap();
    let identity = role.identity(seed.trim().to_owned().into());
    let client = shr_nats::connect_as(&h.nats_url, "intruder", &identity)
        .await
        .unwrap();
    let bus = shr_nats::lookup_bus(&client).await.unwrap();
    let mut sequences = Vec::new();
    for tenant in [TENANT, OTHER] {
        let failed = RunnerEvent::Failed(RunnerFailed {
            tenant: tenant.into(),
            registration: REGISTRATION.into(),
            runner_name: runner.into(),
            job_id,
            provider: ProviderKind::Local,
            kind: bus_schema::ErrorKind::Permanent,
            reason: "forged".into(),
            at: bus_schema::now_millis(),
        });
        let deleted = RunnerEvent::Deleted(RunnerDeleted {
            tenant: tenant.into(),
            runner_name: runner.into(),
            provider: ProviderKind::Local,
            reason: ReapReason::JobCompleted,
            at: bus_schema::now_millis(),
        });
        for event in [failed, deleted] {
            let ack = bus
                .publish_durable(
                    &subject::runner_event(OTHER).unwrap(),
                    bus_schema::encode(&event).unwrap(),
                    None,
                    None,
                )
                .await
                .expect("a tenant may publish on its own runner event subject");
            sequences.push(ack.sequence);
        }
    }
    sequences
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn central_and_agent_run_under_their_grants_and_forged_runner_events_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    security::generate(&keys, &[TENANT.into(), OTHER.into()]).unwrap();
    let conf = keys.join("server.conf");
    std::fs::write(&conf, "include accounts.conf\n").unwrap();
    let server = shr_nats::NatsServer::start(shr_nats::ServerOptions {
        config: Some(conf),
        ..Default::default()
    })
    .await
    .unwrap();

    let mut options = HarnessOptions::new(dir.path().join("work"));
    options.job_duration = Duration::from_millis(1500);
    options.nats_url = Some(server.url());
    options.nats_nkey_seed = Some(security::seed_path(&keys, &Role::Central));
    options.actors = vec![Actor::Webhook, Actor::Poller, Actor::Scheduler];
    let mut h = Harness::start(options).await.expect("central starts");

    // No agent yet: the first job waits for its runner (requested, its provision command
    // queued). Forge events about that runner from the other tenant: a `failed` naming it
    // would provision the job again, a `deleted` would free its slot.
    let jobs = h.queue_jobs(12, &LABEL_SETS);
    let first = jobs[0];
    let ctx = h.running.as_ref().unwrap().ctx.clone();
    let key = subject::job_key(TENANT, REGISTRATION, first).unwrap();
    let before = eventually(Duration::from_secs(60), "the first job's runner", || {
        let (ctx, key) = (ctx.clone(), key.clone());
        async move {
            let (job, _) = ctx.jobs.get(&key).await.ok()??;
            (!job.runners.is_empty()).then_some(job)
        }
    })
    .await;
    let runner = before.runners[0].clone();
    let forged = forge_events(&h, &keys, &runner, first).await;
    let last = *forged.iter().max().unwrap();
    // The scheduler has handled (acked) every forged event.
    let js = ctx.bus.js.clone();
    eventually(Duration::from_secs(30), "forged events acked", || {
        let js = js.clone();
        async move {
            let mut consumer = js
                .get_consumer_from_stream::<shr_nats::async_nats::jetstream::consumer::pull::Config, _, _>(
                    subject::SCHEDULER_RUNNER_EVENTS_CONSUMER,
                    subject::RUNNER_EVENTS_STREAM,
                )
                .await
                .ok()?;
            let info = consumer.info().await.ok()?;
            (info.ack_floor.stream_sequence >= last).then_some(())
        }
    })
    .await;
    let (now, _) = ctx.jobs.get(&key).await.unwrap().unwrap();
    assert_eq!(now.runners, before.runners, "forged events changed the job");
    assert_eq!(
        now.attempts, before.attempts,
        "forged events changed the job"
    );

    let agent = start_agent(&h, &keys).await;
    let summary = h
        .wait_settled(Duration::from_secs(300), false)
        .await
        .unwrap();
    assert!(
        summary.ok(),
        "{summary}\n{}",
        h.explain_lost().await.unwrap()
    );
    assert_eq!(summary.completed, 12);
    // Forged `failed` events would have provisioned the first job again; they did not.
    let (after, _) = ctx.jobs.get(&key).await.unwrap().unwrap();
    assert_eq!(
        after.runners, before.runners,
        "forged events changed the job"
    );
    // Every instance was created by the agent, whose providers now list none.
    assert!(agent.providers.keys().all(|(t, _)| t == TENANT));
    for provider in agent.providers.values() {
        assert!(provider.list().await.unwrap().is_empty());
    }
    // The agent's sweep works under its grant: it lists its keys and takes its lease.
    let report = actors::sweep::sweep_once(
        &agent.ctx,
        &agent.providers,
        TENANT,
        actors::reaper::Clock::wall(),
    )
    .await
    .expect("the agent sweeps its own tenant");
    assert_eq!(report.errors, 0, "{report:?}");
    assert!(
        agent.ctx.runners.names().await.is_err(),
        "the agent cannot list every tenant's runner keys"
    );
    agent.stop().await;
    h.stop().await;
    drop(server);
}

/// `shr-lab demo --placement agents` as the demo runs it: three tenants on one repository
/// with disjoint labels, each with its own agent process, NATS identity, cloud account,
/// GitHub token and JIT key pair, on the shipped security configuration. Polling is off, so
/// every job reaches its tenant through a webhook delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agents_placement_runs_150_jobs_each_on_a_runner_its_own_tenants_agent_created() {
    use shr_lab::placement::{Placement, registration_name};
    const JOBS: usize = 150;
    let dir = tempfile::tempdir().unwrap();
    let mut options = HarnessOptions::new(dir.path().join("work"));
    options.placement = Placement::Agents;
    options.tenants = 3;
    options.provider = ProviderKind::AlibabaEci;
    options.poll = false;
    let started = Instant::now();
    let mut h = Harness::start(options)
        .await
        .expect("the agents placement starts");
    let names: Vec<String> = h.tenants.iter().map(|t| t.name.clone()).collect();
    assert_eq!(names.len(), 3);
    assert_eq!(
        h.children.names(),
        [
            "webhook",
            "central",
            "agent-acme",
            "agent-globex",
            "agent-initech"
        ]
    );

    // Credentials stay with their owner: the central files name no cloud secret and no JIT
    // private key; an agent's file names its own tenant's and nobody else's.
    let processes = h.options.work_dir.join("processes");
    let read =
        |name: &str| std::fs::read_to_string(processes.join(format!("{name}.toml"))).unwrap();
    for central in [read("webhook"), read("central")] {
        assert!(!central.contains("jit_private_key"), "{central}");
        for t in &h.tenants {
            assert!(!central.contains(&t.cloud_secret().display().to_string()));
        }
    }
    for t in &h.tenants {
        let agent = read(&format!("agent-{}", t.name));
        assert!(agent.contains(&format!("agent-{}.nk", t.name)));
        assert!(agent.contains(&t.cloud_secret().display().to_string()));
        for other in h.tenants.iter().filter(|o| o.name != t.name) {
            assert!(
                !agent.contains(&format!("[tenants.{}]", other.name)),
                "{agent}"
            );
            assert!(!agent.contains(&other.cloud_secret().display().to_string()));
            assert!(!agent.contains(&other.jit_private_key.display().to_string()));
            assert!(!agent.contains(&format!("agent-{}.nk", other.name)));
        }
    }

    // Planted in acme's account: an instance of another deployment sharing it, and one of
    // ours that no record explains. Acme's agent sweeps under its grant: the first survives,
    // the second is deleted once it has stayed unknown past the create-retry window (the run
    // settles only when no instance of ours is left).
    let acme = &h.tenants[0];
    let foreign = "shr-acme-990001-1";
    let orphan = "shr-acme-990002-1";
    acme.cloud.create_orphan("another-deployment", foreign);
    acme.cloud
        .create_orphan(shr_lab::harness::CONTROLLER_ID, orphan);
    assert_eq!(acme.cloud.live_instances(), 2);

    h.queue_tenant_jobs(JOBS, &LABEL_SETS);
    let summary = h
        .wait_settled(Duration::from_secs(150), false)
        .await
        .unwrap();
    let exited = h.children.exited();
    assert!(exited.is_empty(), "{exited:?}");
    let line = summary.to_string();
    println!("{line}");
    assert!(summary.ok(), "{line}\n{}", h.explain_lost().await.unwrap());
    assert!(
        line.starts_with(&format!("summary: jobs={JOBS} "))
            && line.contains(&format!(" completed={JOBS} "))
            && line.contains(" lost=0 duplicates=0 leaked=0"),
        "{line}"
    );

    let acme = &h.tenants[0];
    assert_eq!(
        acme.cloud.live_instances(),
        1,
        "the foreign instance survives the sweep, the orphan of ours does not"
    );
    assert_eq!(
        acme.cloud
            .live_instances_of(shr_lab::harness::CONTROLLER_ID),
        0
    );

    // Each job ran on a runner created in its own tenant's cloud account, whose secret only
    // that tenant's agent holds; no account holds another tenant's runner.
    let creates = h.tenant_creates();
    println!("{creates}");
    assert_eq!(creates.checked, JOBS, "{creates:?}");
    assert_eq!(creates.own, JOBS, "{creates:?}");
    assert!(creates.violations.is_empty(), "{:?}", creates.violations);
    for t in &h.tenants {
        let log = t.cloud.launched();
        let jobs = h.job_tenant.values().filter(|n| **n == t.name).count();
        assert_eq!(jobs, JOBS / 3);
        assert!(log.len() >= jobs, "{}: {} creates", t.name, log.len());
        let prefix = format!("shr-{}-", t.name);
        assert!(log.iter().all(|n| n.starts_with(&prefix)), "{log:?}");
    }
    // Three registrations on one repository with disjoint labels, no polling: every job of
    // every tenant came through the webhook, and each delivery was answered 2xx.
    let deliveries = h.sim.deliveries();
    assert!(deliveries.len() >= JOBS);
    assert!(
        deliveries
            .iter()
            .all(|d| d.response_status.is_some_and(|s| (200..300).contains(&s))),
        "a delivery was refused"
    );
    for t in &h.tenants {
        let registration = registration_name(&t.name);
        let ctx = &h.running.as_ref().unwrap().ctx;
        let key_prefix = format!("{}.{registration}.", t.name);
        let records = ctx.jobs.keys().await.unwrap();
        let ours = records
            .iter()
            .filter(|k| k.starts_with(&key_prefix))
            .count();
        assert_eq!(ours, JOBS / 3, "job records of {registration}");
    }
    h.stop().await;
    println!("agents placement: {:.1}s", started.elapsed().as_secs_f64());
}
