//! Golden-byte tests: the MessagePack bytes of every bus message are pinned in `golden/`.
//!
//! A test fails when the encoding of a sample drifts from its file, or when the file no
//! longer decodes into the sample. After an intended, compatible change, regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p bus-schema --test golden` and review the diff.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::path::PathBuf;

use bus_schema::*;
use serde::{Serialize, de::DeserializeOwned};

fn job() -> JobRef {
    JobRef {
        job_id: 29_679_449,
        run_id: 10_245_871,
        repo: "octo-org/example-workflow".into(),
        labels: vec![
            "serverless-hosted-runner".into(),
            "cpu-2".into(),
            "memory-4".into(),
        ],
        name: "build".into(),
    }
}

fn spec() -> RunnerSpec {
    RunnerSpec {
        provider: ProviderKind::AlibabaEci,
        region: Some("cn-shanghai".into()),
        cpu_millis: 2000,
        memory_mib: 4096,
        image: "ghcr.io/acme/runner:2.330.0".into(),
        network: Network {
            vswitch: Some("vsw-abc123".into()),
            security_group: Some("sg-def456".into()),
            subnet: None,
        },
        disk_bucket: Some("build-cache".into()),
        dind: false,
        runner_group_id: 1,
        labels: vec![
            "serverless-hosted-runner".into(),
            "cpu-2".into(),
            "memory-4".into(),
        ],
        charge_labels: vec!["team-a".into()],
        max_runtime_secs: 21_600,
    }
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden")
}

fn check<T>(name: &str, sample: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let bytes = encode(sample).unwrap();
    let path = golden_dir().join(format!("{name}.msgpack"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
    }
    let pinned = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1 once)", path.display()));
    assert_eq!(
        bytes,
        pinned,
        "wire format of {name} drifted from {}",
        path.display()
    );
    let decoded: T = decode(&pinned).unwrap();
    assert_eq!(
        &decoded, sample,
        "golden {name} no longer decodes to the sample"
    );
}

#[test]
fn job_queued_is_pinned() {
    check(
        "job_queued",
        &JobQueued {
            tenant: "acme".into(),
            registration: "acme-org".into(),
            job: job(),
            source: JobSource::Webhook,
            delivery_id: Some("72d3162e-cc78-11e3-81ab-4c9367dc0958".into()),
            observed_at: 1_764_000_000_000,
        },
    );
}

#[test]
fn job_started_is_pinned() {
    check(
        "job_started",
        &JobStarted {
            tenant: "acme".into(),
            registration: "acme-org".into(),
            job: job(),
            runner_name: "shr-acme-29679449-1".into(),
            runner_id: Some(17),
            source: JobSource::Poll,
            delivery_id: None,
            observed_at: 1_764_000_000_500,
        },
    );
}

#[test]
fn job_completed_is_pinned() {
    check(
        "job_completed",
        &JobCompleted {
            tenant: "acme".into(),
            registration: "acme-org".into(),
            job: job(),
            conclusion: Some("success".into()),
            runner_name: Some("shr-acme-29679449-1".into()),
            runner_id: Some(17),
            source: JobSource::Webhook,
            delivery_id: Some("d-3".into()),
            observed_at: 1_764_000_060_000,
        },
    );
}

#[test]
fn provision_runner_is_pinned() {
    check(
        "provision_runner",
        &ProvisionRunner {
            tenant: "acme".into(),
            registration: "acme-org".into(),
            runner_name: "shr-acme-29679449-1".into(),
            job_id: 29_679_449,
            attempt: 1,
            spec: spec(),
            github_runner_id: 17,
            jit_config: Secret::new("eyJqaXQiOiJjb25maWcifQ=="),
            requested_at: 1_764_000_000_100,
            sealed_jit_config: None,
        },
    );
}

#[test]
fn sealed_provision_runner_is_pinned() {
    // The ciphertext is random per seal, so the sample carries fixed base64 bytes.
    check(
        "provision_runner_sealed",
        &ProvisionRunner {
            tenant: "acme".into(),
            registration: "acme-org".into(),
            runner_name: "shr-acme-29679449-1".into(),
            job_id: 29_679_449,
            attempt: 1,
            spec: spec(),
            github_runner_id: 17,
            jit_config: Secret::default(),
            requested_at: 1_764_000_000_100,
            sealed_jit_config: Some(SealedSecret::from_base64(
                "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=",
            )),
        },
    );
}

#[test]
fn a_sealed_provision_command_opens_only_for_its_tenant() {
    let (acme, globex) = (JitPrivateKey::generate(), JitPrivateKey::generate());
    let jit = Secret::new("eyJqaXQiOiJhY21lIn0=");
    let cmd = ProvisionRunner {
        tenant: "acme".into(),
        registration: "acme-org".into(),
        runner_name: "shr-acme-1-1".into(),
        job_id: 1,
        attempt: 1,
        spec: spec(),
        github_runner_id: 1,
        jit_config: Secret::default(),
        requested_at: 0,
        sealed_jit_config: Some(acme.public_key().seal(&jit).unwrap()),
    };
    let bytes = encode(&cmd).unwrap();
    assert!(
        !bytes.windows(8).any(|w| w == b"eyJqaXQi"),
        "the JIT config is not on the wire in clear"
    );
    let received: ProvisionRunner = decode(&bytes).unwrap();
    let sealed = received.sealed_jit_config.unwrap();
    assert_eq!(acme.open(&sealed).unwrap(), jit);
    assert!(matches!(globex.open(&sealed), Err(SealError::Open)));
}

#[test]
fn reap_runner_is_pinned() {
    check(
        "reap_runner",
        &ReapRunner {
            tenant: "acme".into(),
            runner_name: "shr-acme-29679449-1".into(),
            reason: ReapReason::JobCompleted,
            requested_at: 1_764_000_060_100,
        },
    );
}

#[test]
fn runner_events_are_pinned() {
    check(
        "runner_created",
        &RunnerEvent::Created(RunnerCreated {
            tenant: "acme".into(),
            registration: "acme-org".into(),
            runner_name: "shr-acme-29679449-1".into(),
            job_id: 29_679_449,
            provider: ProviderKind::AzureAci,
            instance_id: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/shr-acme-29679449-1".into(),
            at: 1_764_000_001_000,
        }),
    );
    check(
        "runner_failed",
        &RunnerEvent::Failed(RunnerFailed {
            tenant: "acme".into(),
            registration: "acme-org".into(),
            runner_name: "shr-acme-29679449-1".into(),
            job_id: 29_679_449,
            provider: ProviderKind::GcpCloudrun,
            kind: ErrorKind::Quota,
            reason: "RESOURCE_EXHAUSTED: cpu quota".into(),
            at: 1_764_000_001_000,
        }),
    );
    check(
        "runner_deleted",
        &RunnerEvent::Deleted(RunnerDeleted {
            tenant: "acme".into(),
            runner_name: "shr-acme-29679449-1".into(),
            provider: ProviderKind::GcpBatch,
            reason: ReapReason::Orphan,
            at: 1_764_000_090_000,
        }),
    );
}

#[test]
fn records_are_pinned() {
    check(
        "job_record",
        &JobRecord {
            tenant: "acme".into(),
            registration: "acme-org".into(),
            job: job(),
            state: JobState::Provisioning,
            attempts: 1,
            runners: vec!["shr-acme-29679449-1".into()],
            ran_on: None,
            conclusion: None,
            declined_reason: None,
            declined_code: None,
            created_at: 1_764_000_000_000,
            updated_at: 1_764_000_000_100,
        },
    );
    check(
        "runner_record",
        &RunnerRecord {
            name: "shr-acme-29679449-1".into(),
            tenant: "acme".into(),
            registration: "acme-org".into(),
            provider: ProviderKind::Local,
            job_id: 29_679_449,
            state: RunnerState::Busy,
            ran_job_id: Some(29_679_449),
            github_runner_id: Some(17),
            instance_id: Some("pid-4242".into()),
            spec: Some(spec()),
            delete_attempts: 0,
            last_error: None,
            created_at: 1_764_000_000_100,
            updated_at: 1_764_000_002_000,
        },
    );
}

#[test]
fn pool_records_are_pinned() {
    check(
        "slots",
        &Slots {
            holders: [
                ("shr-acme-0-3".to_owned(), 1_764_000_000_000),
                ("shr-acme-29679449-1".to_owned(), 1_764_000_000_100),
            ]
            .into_iter()
            .collect(),
            waiting: [(29_679_450, 1_764_000_000_200)].into_iter().collect(),
        },
    );
    check("pool_sequence", &PoolSequence { next: 3 });
}

#[test]
fn messages_are_maps_with_field_names() {
    let bytes = encode(&ReapRunner {
        tenant: "t".into(),
        runner_name: "n".into(),
        reason: ReapReason::Manual,
        requested_at: 0,
    })
    .unwrap();
    // fixmap of 4 entries, first key "tenant".
    assert_eq!(bytes[0], 0x84);
    assert_eq!(&bytes[1..8], b"\xa6tenant");
}

#[test]
fn decoding_ignores_unknown_fields_and_defaults_missing_optional_ones() {
    #[derive(Serialize)]
    struct Newer<'a> {
        tenant: &'a str,
        runner_name: &'a str,
        reason: &'a str,
        requested_at: i64,
        added_in_v1_1: u32,
    }
    let bytes = rmp_serde::to_vec_named(&Newer {
        tenant: "t",
        runner_name: "n",
        reason: "orphan",
        requested_at: 3,
        added_in_v1_1: 9,
    })
    .unwrap();
    let old: ReapRunner = decode(&bytes).unwrap();
    assert_eq!(old.reason, ReapReason::Orphan);
}

#[test]
fn job_event_decodes_by_subject_kind() {
    let queued = JobQueued {
        tenant: "acme".into(),
        registration: "r".into(),
        job: job(),
        source: JobSource::Poll,
        delivery_id: None,
        observed_at: 1,
    };
    let event = JobEvent::Queued(queued);
    let subject = event.subject().unwrap();
    assert_eq!(subject, "shr.v1.job.queued.acme");
    let back = JobEvent::decode(&subject, &event.encode().unwrap()).unwrap();
    assert_eq!(back, event);
    assert!(JobEvent::decode("shr.v1.job.bogus.acme", &event.encode().unwrap()).is_err());
}

#[test]
fn provision_command_debug_hides_the_jit_config() {
    let cmd = ProvisionRunner {
        tenant: "acme".into(),
        registration: "r".into(),
        runner_name: "shr-acme-1-1".into(),
        job_id: 1,
        attempt: 1,
        spec: spec(),
        github_runner_id: 1,
        jit_config: Secret::new("TOPSECRETJIT"),
        requested_at: 0,
        sealed_jit_config: None,
    };
    assert!(!format!("{cmd:?}").contains("TOPSECRETJIT"));
}
