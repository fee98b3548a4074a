//! The NATS security configuration: one identity per role, each granted exactly the subjects
//! its actors use, written as a server `accounts` block with nkey users.
//!
//! | identity | runs | inbox prefix |
//! | --- | --- | --- |
//! | `central` | scheduler, poller, (webhook), stream and bucket setup | `_INBOX_central` |
//! | `webhook` | the internet-facing webhook: publishes job events only | `_INBOX_webhook` |
//! | `agent-<tenant>` | the tenant's provisioners, reaper and sweep | `_INBOX_<tenant>` |
//!
//! The grants follow the code: subject builders from [`bus_schema::subject`], consumer create
//! subjects as async-nats spells them for a named consumer with one filter
//! (`$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>`), KV reads as direct gets with the key
//! in the subject, KV writes as publishes on `$KV.<bucket>.<key>`. The server checks that a
//! create request's body matches the filter in its subject, so a tenant cannot create a
//! consumer over another tenant's subjects. `nats/tests/security.rs` runs every role under
//! its grant on a live server.
//!
//! [`generate`] writes the server include (`accounts.conf`) and one seed file per identity;
//! `nats/conf/README.md` says how to deploy and rotate them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use bus_schema::{ProviderKind, subject};
use secrecy::SecretString;

use crate::Identity;

/// The account all identities share (the bus lives in one account: see the README).
pub const ACCOUNT: &str = "SHR";

/// One role's identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// The central placement: every actor for every tenant, and stream and bucket setup.
    Central,
    /// The webhook alone: publishes job events.
    Webhook,
    /// One tenant's agent: its provisioners, reaper and sweep.
    Agent(String),
}

/// What one identity may publish and subscribe to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
}

/// A failure to generate the configuration.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// A tenant name that cannot stand in a subject.
    #[error("tenant `{tenant}` cannot be used in NATS subjects")]
    Tenant {
        tenant: String,
        #[source]
        source: subject::SubjectError,
    },
    /// Making a key pair failed.
    #[error("generating an nkey for {identity}")]
    Key {
        identity: String,
        #[source]
        source: nkeys::error::Error,
    },
    /// Writing a file failed.
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Role {
    /// The identity's name: user name in the config, seed file stem.
    pub fn name(&self) -> String {
        match self {
            Role::Central => "central".into(),
            Role::Webhook => "webhook".into(),
            Role::Agent(tenant) => format!("agent-{tenant}"),
        }
    }

    /// The inbox prefix this identity connects with; its grant allows no other inbox.
    pub fn inbox_prefix(&self) -> String {
        match self {
            Role::Central => "_INBOX_central".into(),
            Role::Webhook => "_INBOX_webhook".into(),
            Role::Agent(tenant) => format!("_INBOX_{tenant}"),
        }
    }

    /// The connect identity of this role with `seed`.
    pub fn identity(&self, seed: SecretString) -> Identity {
        Identity {
            nkey_seed: Some(seed),
            creds: None,
            inbox_prefix: Some(self.inbox_prefix()),
        }
    }

    /// What this role's actors use (see the module docs).
    pub fn grants(&self) -> Result<Grants, subject::SubjectError> {
        Ok(match self {
            Role::Central => Grants {
                // Everything on the bus, but replies only to its own inbox: it cannot read a
                // tenant's replies or pulled messages.
                publish: vec![
                    "$JS.API.>".into(),
                    "$JS.ACK.>".into(),
                    "$JS.FC.>".into(),
                    "$KV.>".into(),
                    format!("{}.>", subject::PREFIX),
                ],
                subscribe: vec![format!("{}.>", self.inbox_prefix())],
            },
            Role::Webhook => Grants {
                // Job events, and the one status key saying when it last accepted a delivery.
                publish: [
                    vec![
                        subject::ALL_JOB_EVENTS.to_owned(),
                        format!("$KV.{}.{}", subject::JOBS_BUCKET, subject::WEBHOOK_SEEN_KEY),
                    ],
                    bucket_info(),
                ]
                .concat(),
                subscribe: vec![format!("{}.>", self.inbox_prefix())],
            },
            Role::Agent(tenant) => agent_grants(tenant, &self.inbox_prefix())?,
        })
    }
}

/// Opening the three buckets without stream info ([`crate::lookup_bus`]): account info,
/// then an identical create of each bucket's stream, which the server answers with the
/// stream's info and no change. Stream info itself is not granted: asked with a
/// `subjects_filter`, it lists every key of the bucket, every tenant's included.
fn bucket_info() -> Vec<String> {
    let mut out = vec!["$JS.API.INFO".to_owned()];
    out.extend(
        [
            subject::JOBS_BUCKET,
            subject::RUNNERS_BUCKET,
            subject::LEASES_BUCKET,
        ]
        .iter()
        .map(|b| format!("$JS.API.STREAM.CREATE.KV_{b}")),
    );
    out
}

/// A durable pull consumer bound by name with one filter: look up, create, fetch, ack.
fn consumer(stream: &str, name: &str, filter: &str) -> [String; 4] {
    [
        format!("$JS.API.CONSUMER.INFO.{stream}.{name}"),
        format!("$JS.API.CONSUMER.CREATE.{stream}.{name}.{filter}"),
        format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}"),
        format!("$JS.ACK.{stream}.{name}.>"),
    ]
}

fn agent_grants(tenant: &str, inbox: &str) -> Result<Grants, subject::SubjectError> {
    let runners = format!("KV_{}", subject::RUNNERS_BUCKET);
    let leases = format!("KV_{}", subject::LEASES_BUCKET);
    let runner_keys = format!(
        "$KV.{}.{}",
        subject::RUNNERS_BUCKET,
        subject::runner_keys_of(tenant)?
    );
    let sweep_key = format!(
        "$KV.{}.{}",
        subject::LEASES_BUCKET,
        subject::sweep_lease_key(tenant)?
    );
    let mut publish = vec![
        // Its runner events (provisioner, reaper) and reap commands (provisioner undoing a
        // failed create): JetStream publishes, acked to its inbox.
        subject::runner_event(tenant)?,
        subject::reap(tenant)?,
    ];
    for kind in ProviderKind::ALL {
        publish.extend(consumer(
            bus_schema::subject::PROVISION_STREAM,
            &subject::provisioner_consumer(tenant, kind)?,
            &subject::provision(tenant, kind)?,
        ));
    }
    publish.extend(consumer(
        subject::REAP_STREAM,
        &subject::reaper_consumer(tenant)?,
        &subject::reap(tenant)?,
    ));
    publish.extend(bucket_info());
    publish.extend([
        // Its runner records: read (direct get), write (publish with CAS headers), list
        // (a named consumer over its keys, fetched; names are random and unlisted).
        format!("$JS.API.DIRECT.GET.{runners}.{runner_keys}"),
        runner_keys.clone(),
        format!("$JS.API.CONSUMER.CREATE.{runners}.*.{runner_keys}"),
        format!("$JS.API.CONSUMER.MSG.NEXT.{runners}.*"),
        // Its sweep lease.
        format!("$JS.API.DIRECT.GET.{leases}.{sweep_key}"),
        sweep_key,
    ]);
    Ok(Grants {
        publish,
        subscribe: vec![format!("{inbox}.>")],
    })
}

/// The roles of a deployment: central, webhook and one agent per tenant.
pub fn roles(tenants: &[String]) -> Result<Vec<Role>, SecurityError> {
    let mut roles = vec![Role::Central, Role::Webhook];
    for tenant in tenants {
        subject::validate_token("tenant", tenant).map_err(|source| SecurityError::Tenant {
            tenant: tenant.clone(),
            source,
        })?;
        roles.push(Role::Agent(tenant.clone()));
    }
    Ok(roles)
}

/// The server configuration (an `accounts` block and `system_account`) for `users`: each
/// role with its nkey public key.
pub fn render(users: &[(Role, String)]) -> Result<String, SecurityError> {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Generated by shr-nats-config: NATS users of serverless-hosted-runner.\n\
         # Include from the server config (`include accounts.conf`). Public keys only; the\n\
         # seeds live in the *.nk files next to it, one per identity. See nats/conf/README.md.\n"
    );
    let _ = writeln!(out, "accounts {{\n  SYS {{ users: [] }}\n  {ACCOUNT} {{");
    let _ = writeln!(out, "    jetstream: enabled\n    users: [");
    for (role, public_key) in users {
        let grants = role.grants().map_err(|source| SecurityError::Tenant {
            tenant: role.name(),
            source,
        })?;
        let _ = writeln!(out, "      # {}", role.name());
        let _ = writeln!(out, "      {{\n        nkey: {public_key}");
        let _ = writeln!(out, "        permissions: {{");
        for (verb, list) in [
            ("publish", &grants.publish),
            ("subscribe", &grants.subscribe),
        ] {
            let _ = writeln!(out, "          {verb}: {{ allow: [");
            for subject in list {
                let _ = writeln!(out, "            \"{subject}\"");
            }
            let _ = writeln!(out, "          ] }}");
        }
        let _ = writeln!(out, "        }}\n      }}");
    }
    let _ = writeln!(out, "    ]\n  }}\n}}\nsystem_account: SYS");
    Ok(out)
}

/// Writes `accounts.conf` and `<identity>.nk` (the seed, mode 0600) for central, webhook and
/// every tenant into `dir`. Existing seeds are kept (so re-running adds tenants without
/// rotating anyone); delete a seed file to rotate that identity. Returns the roles written.
pub fn generate(dir: &Path, tenants: &[String]) -> Result<Vec<Role>, SecurityError> {
    let roles = roles(tenants)?;
    std::fs::create_dir_all(dir).map_err(|source| SecurityError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let mut users = Vec::new();
    for role in &roles {
        let path = seed_path(dir, role);
        let pair = match std::fs::read_to_string(&path) {
            Ok(seed) => nkeys::KeyPair::from_seed(seed.trim()),
            Err(_) => {
                let pair = nkeys::KeyPair::new_user();
                let seed = pair.seed().map_err(|source| SecurityError::Key {
                    identity: role.name(),
                    source,
                })?;
                write_private(&path, &seed)?;
                Ok(pair)
            }
        }
        .map_err(|source| SecurityError::Key {
            identity: role.name(),
            source,
        })?;
        users.push((role.clone(), pair.public_key()));
    }
    let conf = dir.join("accounts.conf");
    std::fs::write(&conf, render(&users)?)
        .map_err(|source| SecurityError::Write { path: conf, source })?;
    Ok(roles)
}

/// Where [`generate`] keeps `role`'s seed.
pub fn seed_path(dir: &Path, role: &Role) -> PathBuf {
    dir.join(format!("{}.nk", role.name()))
}

fn write_private(path: &Path, contents: &str) -> Result<(), SecurityError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let write = |options: &std::fs::OpenOptions| -> std::io::Result<()> {
        let mut file = options.open(path)?;
        file.write_all(contents.as_bytes())?;
        file.write_all(b"\n")
    };
    write(&options).map_err(|source| SecurityError::Write {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_is_granted_only_subjects_and_keys_of_its_tenant() {
        let grants = Role::Agent("a".into()).grants().unwrap();
        assert_eq!(grants.subscribe, vec!["_INBOX_a.>".to_owned()]);
        for subject in &grants.publish {
            let about_a = subject.contains(".a.")
                || subject.ends_with(".a")
                || subject.contains("-a-")
                || subject.contains("-a.")
                || subject.ends_with("-a");
            let shared = subject.starts_with("$JS.API.STREAM.CREATE.KV_")
                || subject == "$JS.API.INFO"
                || subject.starts_with("$JS.API.CONSUMER.MSG.NEXT.KV_shr-runners.*");
            assert!(about_a || shared, "{subject}");
        }
        assert!(
            grants.publish.contains(
                &"$JS.API.CONSUMER.CREATE.SHR_REAP.reap-a.shr.v1.runner.reap.a".to_owned()
            )
        );
        assert!(!grants.publish.iter().any(|s| s.contains("STREAM.INFO")
            || (s.contains("STREAM.CREATE") && !s.contains("STREAM.CREATE.KV_shr-"))
            || s.contains("STREAM.UPDATE")
            || s.contains("shr.v1.job")));
    }

    #[test]
    fn the_webhook_publishes_job_events_and_nothing_else_on_the_bus() {
        let grants = Role::Webhook.grants().unwrap();
        let bus: Vec<_> = grants
            .publish
            .iter()
            .filter(|s| !s.starts_with("$JS.API.STREAM.CREATE.KV_") && *s != "$JS.API.INFO")
            .collect();
        assert_eq!(bus, vec!["shr.v1.job.*.*", "$KV.shr-jobs.seen.webhook"]);
    }

    #[test]
    fn generate_keeps_existing_seeds_and_rejects_bad_tenants() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), &["a".into()]).unwrap();
        let seed = std::fs::read_to_string(seed_path(dir.path(), &Role::Agent("a".into())));
        let first = seed.unwrap();
        assert!(first.starts_with("SU"));
        generate(dir.path(), &["a".into(), "b".into()]).unwrap();
        let again = std::fs::read_to_string(seed_path(dir.path(), &Role::Agent("a".into())));
        assert_eq!(again.unwrap(), first);
        let conf = std::fs::read_to_string(dir.path().join("accounts.conf")).unwrap();
        assert_eq!(conf.matches("nkey: U").count(), 4, "{conf}");
        assert!(!conf.contains(first.trim()), "no seed in the server config");
        assert!(matches!(
            generate(dir.path(), &["a.b".into()]),
            Err(SecurityError::Tenant { .. })
        ));
    }
}
