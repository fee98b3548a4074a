//! The cloud simulators as a demo/test fixture (providers are built by the `clouds` crate).
//!
//! - [`start_demo_cloud`] / [`start_cloud_sim`] run one cloud simulator that launches a given
//!   program for every started instance, with sim-only credentials written as files, and
//!   [`DemoCloud::provider_toml`] gives the provider section that points a tenant at it.
//!
//! Guarantees: credentials are never logged or put in `Debug` output; the simulator's
//! secrets live only in files under the fixture's directory (mode 0600) and in memory.
//! The GCP service-account key is a fresh RSA-2048 key generated once per process; it is a
//! simulator-only key that grants access to nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use bus_schema::ProviderKind;
use providers::tags;
use secrecy::{ExposeSecret as _, SecretString};

// ---- The simulator fixture -------------------------------------------------------------

const ALIBABA_REGION: &str = "cn-shanghai";
const ALIBABA_KEY_ID: &str = "LTAI5tSimulatorKey";
const ALIBABA_VSWITCH: &str = "vsw-sim0001";
const ALIBABA_SECURITY_GROUP: &str = "sg-sim0001";
const GCP_PROJECT: &str = "shr-sim";
const GCP_REGION: &str = "europe-west1";
const GCP_EMAIL: &str = "shr-sim@shr-sim.iam.gserviceaccount.com";

/// A transient failure [`DemoCloud::inject`] queues, mapped onto each platform's own:
/// throttling (ECI `Throttling.User`, ARM 429 with `Retry-After: 1`, Google 429), a server
/// error (ECI 500, ARM 500, Google 503), or a normal answer after a delay (longer than the
/// client's request timeout, it is a timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloudFault {
    Throttle,
    ServerError,
    Slow(std::time::Duration),
}

/// One running cloud simulator and the sim-only credentials that reach it. Dropping it stops
/// the simulator and kills the runner processes it launched.
#[derive(Debug)]
pub struct DemoCloud {
    kind: ProviderKind,
    sim: SimHandle,
    /// The `file:` secret (AccessKey secret, client secret or key JSON).
    secret_path: PathBuf,
}

#[derive(Debug)]
enum SimHandle {
    Alibaba(cloud_alibaba::sim::SimHandle),
    Azure {
        sim: cloud_azure::SimHandle,
        config: Box<cloud_azure::SimConfig>,
    },
    Gcp(cloud_gcp::sim::SimHandle),
}

/// [`start_cloud_sim`] on a free port of 127.0.0.1.
///
/// `kind` must be a cloud: `local` has no simulator and is an error.
pub async fn start_demo_cloud(
    kind: ProviderKind,
    dir: &Path,
    launch_program: PathBuf,
    launch_args: Vec<String>,
    failure_percent: u32,
    seed: u64,
) -> anyhow::Result<DemoCloud> {
    start_cloud_sim(
        kind,
        SocketAddr::from(([127, 0, 0, 1], 0)),
        dir,
        launch_program,
        launch_args,
        failure_percent,
        seed,
    )
    .await
}

/// Starts the simulator of `kind` on `listen`. Every instance that starts runs
/// `launch_program launch_args` with the JIT config the way the simulator delivers it (env
/// `ACTIONS_RUNNER_INPUT_JITCONFIG`, or `--jitconfig-file` for ECI's config-file volume).
/// The sim-only secret is written under `dir` (created if needed). `failure_percent` of API
/// calls fail (see [`DemoCloud::set_failure_percent`]).
pub async fn start_cloud_sim(
    kind: ProviderKind,
    listen: SocketAddr,
    dir: &Path,
    launch_program: PathBuf,
    launch_args: Vec<String>,
    failure_percent: u32,
    seed: u64,
) -> anyhow::Result<DemoCloud> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let secret_path = dir.join(format!("{kind}-secret"));
    let random = || uuid::Uuid::new_v4().simple().to_string();
    let sim = match kind {
        ProviderKind::Local => anyhow::bail!("the local provider has no cloud simulator"),
        // Interim: the lab's `CloudSim` trait replaces this fixture's per-cloud match.
        ProviderKind::AwsFargate => {
            anyhow::bail!("the aws-fargate simulator is not in this fixture")
        }
        ProviderKind::AlibabaEci => {
            let secret = random();
            write_secret(&secret_path, &secret)?;
            let mut config = cloud_alibaba::sim::SimConfig::new(
                ALIBABA_REGION,
                ALIBABA_KEY_ID,
                SecretString::from(secret),
            );
            config.launch = Some(cloud_alibaba::sim::Launch {
                program: launch_program,
                args: launch_args,
            });
            SimHandle::Alibaba(
                cloud_alibaba::sim::Sim::start(config, listen)
                    .await
                    .context("starting the ECI simulator")?,
            )
        }
        ProviderKind::AzureAci => {
            let secret = random();
            write_secret(&secret_path, &secret)?;
            let config = cloud_azure::SimConfig {
                client_secret: SecretString::from(secret),
                launch: Some(cloud_azure::Launch {
                    program: launch_program,
                    args: launch_args,
                }),
                ..cloud_azure::SimConfig::default()
            };
            let sim = cloud_azure::Sim::start(config.clone(), listen)
                .await
                .context("starting the ACI simulator")?;
            SimHandle::Azure {
                sim,
                config: Box::new(config),
            }
        }
        ProviderKind::GcpCloudrun | ProviderKind::GcpBatch => {
            let (private_pem, public_pem) = sim_rsa_key().await?;
            let key_id = format!("{}{}", random(), &random()[..8]);
            let mut config = cloud_gcp::sim::SimConfig::new(
                GCP_PROJECT,
                cloud_gcp::sim::SimServiceAccount {
                    client_email: GCP_EMAIL.into(),
                    key_id: key_id.clone(),
                    public_key_pem: public_pem,
                },
            );
            config.launch = Some(cloud_gcp::sim::Launch {
                program: launch_program,
                args: launch_args,
            });
            let sim = cloud_gcp::sim::Sim::start(config, listen)
                .await
                .context("starting the GCP simulator")?;
            let key = serde_json::json!({
                "type": "service_account",
                "project_id": GCP_PROJECT,
                "private_key_id": key_id,
                "private_key": private_pem.expose_secret(),
                "client_email": GCP_EMAIL,
                "token_uri": format!("{}/token", sim.base_url()),
            });
            write_secret(&secret_path, &key.to_string())?;
            SimHandle::Gcp(sim)
        }
    };
    let cloud = DemoCloud {
        kind,
        sim,
        secret_path,
    };
    cloud.set_failure_percent(failure_percent, seed);
    Ok(cloud)
}

/// Writes a secret file readable by its owner only.
fn write_secret(path: &Path, value: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))
}

/// A fresh RSA-2048 key (private PKCS#8 PEM, public SPKI PEM), generated once per process:
/// the simulator's service-account key. It exists only in this process and its files.
async fn sim_rsa_key() -> anyhow::Result<(SecretString, String)> {
    static KEY: tokio::sync::OnceCell<(SecretString, String)> = tokio::sync::OnceCell::const_new();
    let (private, public) = KEY
        .get_or_try_init(|| async {
            tokio::task::spawn_blocking(generate_rsa_key)
                .await
                .context("generating the simulator's RSA key")?
        })
        .await?;
    Ok((private.clone(), public.clone()))
}

fn generate_rsa_key() -> anyhow::Result<(SecretString, String)> {
    use rsa::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
        .context("generating the simulator's RSA key")?;
    let private = key
        .to_pkcs8_pem(LineEnding::LF)
        .context("encoding the simulator's RSA key")?;
    let public = rsa::RsaPublicKey::from(&key)
        .to_public_key_pem(LineEnding::LF)
        .context("encoding the simulator's RSA public key")?;
    Ok((SecretString::from(private.as_str().to_owned()), public))
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

impl DemoCloud {
    pub fn kind(&self) -> ProviderKind {
        self.kind
    }

    /// The simulator's base URL.
    pub fn base_url(&self) -> String {
        match &self.sim {
            SimHandle::Alibaba(sim) => sim.base_url(),
            SimHandle::Azure { sim, .. } => sim.base_url(),
            SimHandle::Gcp(sim) => sim.base_url().to_owned(),
        }
    }

    /// The `[tenants.<tenant>.providers.<kind>]` section that points `tenant` at this
    /// simulator, its secret as a `file:` reference.
    pub fn provider_toml(&self, tenant: &str) -> String {
        let secret = toml_str(&format!("file:{}", self.secret_path.display()));
        let base = self.base_url();
        let bare = !tenant.is_empty()
            && tenant
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        let key = if bare {
            tenant.to_owned()
        } else {
            toml_str(tenant)
        };
        let header = format!("[tenants.{key}.providers.{}]", self.kind);
        let body = match &self.sim {
            SimHandle::Alibaba(_) => format!(
                "endpoint = {}\nregion = {}\naccess_key_id = {}\naccess_key_secret = {secret}\n\
                 vswitch_id = {}\nsecurity_group_id = {}\n",
                toml_str(&base),
                toml_str(ALIBABA_REGION),
                toml_str(ALIBABA_KEY_ID),
                toml_str(ALIBABA_VSWITCH),
                toml_str(ALIBABA_SECURITY_GROUP),
            ),
            SimHandle::Azure { config, .. } => format!(
                "endpoint = {}\nlogin_endpoint = {}\nsubscription_id = {}\n\
                 resource_group = {}\nlocation = {}\ntenant_id = {}\nclient_id = {}\n\
                 client_secret = {secret}\nsubnet_id = {}\n",
                toml_str(&base),
                toml_str(&base),
                toml_str(&config.subscription_id),
                toml_str(config.resource_groups.first().map_or("", String::as_str)),
                toml_str(&config.location),
                toml_str(&config.tenant_id),
                toml_str(&config.client_id),
                toml_str(&format!(
                    "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/virtualNetworks/runners/subnets/default",
                    config.subscription_id,
                    config.resource_groups.first().map_or("", String::as_str)
                )),
            ),
            SimHandle::Gcp(_) => format!(
                "endpoint = {}\ntoken_endpoint = {}\nproject = {}\nregion = {}\n\
                 service_account_key = {secret}\n",
                toml_str(&base),
                toml_str(&format!("{}/token", base.trim_end_matches('/'))),
                toml_str(GCP_PROJECT),
                toml_str(GCP_REGION),
            ),
        };
        format!("{header}\n{body}")
    }

    /// Every instance the simulator holds (running or stopped, not deleted) with its tags.
    fn instances(&self) -> Vec<BTreeMap<String, String>> {
        match &self.sim {
            SimHandle::Alibaba(sim) => sim.groups().into_iter().map(|g| g.tags).collect(),
            SimHandle::Azure { sim, .. } => sim.instances().into_iter().map(|i| i.tags).collect(),
            SimHandle::Gcp(sim) => {
                let jobs = if self.kind == ProviderKind::GcpCloudrun {
                    sim.run_jobs()
                } else {
                    sim.batch_jobs()
                };
                jobs.into_iter().map(|j| j.labels).collect()
            }
        }
    }

    /// Instances the simulator still holds (running or stopped, not deleted) that carry a
    /// controller tag, whatever its value (the demo has one controller; orphans made by
    /// [`Self::create_orphan`] count too).
    pub fn live_instances(&self) -> usize {
        self.instances()
            .iter()
            .filter(|t| t.contains_key(tags::CONTROLLER))
            .count()
    }

    /// Like [`Self::live_instances`], counting only instances of `controller_id`.
    pub fn live_instances_of(&self, controller_id: &str) -> usize {
        let want = match &self.sim {
            SimHandle::Gcp(_) => cloud_gcp::labels::sanitize_value(controller_id),
            _ => controller_id.to_owned(),
        };
        self.instances()
            .iter()
            .filter(|t| t.get(tags::CONTROLLER) == Some(&want))
            .count()
    }

    /// (runner processes launched, distinct instance names launched): a difference means an
    /// instance was started twice.
    pub fn launches(&self) -> (usize, usize) {
        let launched = match &self.sim {
            SimHandle::Alibaba(sim) => sim.launched(),
            SimHandle::Azure { sim, .. } => sim.launched(),
            SimHandle::Gcp(sim) => sim.launched(),
        };
        let distinct = launched.iter().collect::<BTreeSet<_>>().len();
        (launched.len(), distinct)
    }

    /// Creates a running instance directly in the simulator, behind the system's back,
    /// tagged with `controller_id` and runner name `name` (which must be a valid instance
    /// name on the platform, as the system's runner names are).
    pub fn create_orphan(&self, controller_id: &str, name: &str) {
        let tags = BTreeMap::from([
            (tags::CONTROLLER.to_owned(), controller_id.to_owned()),
            (tags::RUNNER.to_owned(), name.to_owned()),
        ]);
        match &self.sim {
            SimHandle::Alibaba(sim) => {
                sim.create_orphan(name, tags);
            }
            SimHandle::Azure { sim, config } => {
                let group = config.resource_groups.first().map_or("", String::as_str);
                sim.create_orphan(group, &cloud_azure::limits::group_name(name), tags);
            }
            SimHandle::Gcp(sim) => {
                let labels = cloud_gcp::labels::to_labels(&tags);
                if self.kind == ProviderKind::GcpCloudrun {
                    sim.insert_run_job(GCP_REGION, name, labels);
                } else {
                    sim.insert_batch_job(GCP_REGION, name, labels);
                }
            }
        }
    }

    /// Makes the next `count` API calls of this simulator fail with `fault` (ahead of the
    /// random failure rate; those calls draw no random failure).
    pub fn inject(&self, fault: CloudFault, count: usize) {
        match &self.sim {
            SimHandle::Alibaba(sim) => sim.fail_next(
                count,
                match fault {
                    CloudFault::Throttle => cloud_alibaba::sim::Fault::Throttling,
                    CloudFault::ServerError => cloud_alibaba::sim::Fault::ServerError,
                    CloudFault::Slow(d) => cloud_alibaba::sim::Fault::Slow(d),
                },
            ),
            SimHandle::Azure { sim, .. } => sim.inject(
                match fault {
                    CloudFault::Throttle => cloud_azure::Fault::Throttle {
                        retry_after_secs: 1,
                    },
                    CloudFault::ServerError => cloud_azure::Fault::ServerError,
                    CloudFault::Slow(d) => cloud_azure::Fault::Slow(d),
                },
                count,
            ),
            SimHandle::Gcp(sim) => sim.inject(
                match fault {
                    CloudFault::Throttle => cloud_gcp::sim::Fault::Throttle,
                    CloudFault::ServerError => cloud_gcp::sim::Fault::Unavailable,
                    CloudFault::Slow(d) => cloud_gcp::sim::Fault::Slow(d),
                },
                count,
            ),
        }
    }

    /// Makes `percent`% of API calls fail, drawn from an RNG seeded with `seed`; 0 clears.
    /// The failure is the platform's own transient error: ECI `Throttling.User` (400), ARM
    /// `InternalServerError` (500), Google `UNAVAILABLE` (503).
    pub fn set_failure_percent(&self, percent: u32, seed: u64) {
        let percent = u8::try_from(percent.min(100)).unwrap_or(100);
        match &self.sim {
            SimHandle::Alibaba(sim) if percent == 0 => sim.clear_faults(),
            SimHandle::Alibaba(sim) => {
                sim.set_failure_rate(percent, cloud_alibaba::sim::Fault::Throttling, seed)
            }
            SimHandle::Azure { sim, .. } => sim.set_failure_rate(percent, seed),
            SimHandle::Gcp(sim) => sim.fail_percent(percent, seed),
        }
    }
}
