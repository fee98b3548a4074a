//! Shared vocabulary: providers, GitHub scopes, jobs and the runner spec a job resolves to.

use serde::{Deserialize, Serialize};

/// A platform that hosts runners. Its [`ProviderKind::token`] is the subject token and the
/// name used in configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// A child process on the provisioner's host, for development and tests.
    Local,
    /// Alibaba Cloud Elastic Container Instance.
    AlibabaEci,
    /// Azure Container Instances.
    AzureAci,
    /// Google Cloud Run v2 jobs.
    GcpCloudrun,
    /// Google Cloud Batch, used when a job needs docker-in-docker on GCP.
    GcpBatch,
    /// AWS ECS tasks on Fargate (optionally Fargate Spot).
    AwsFargate,
}

/// A provider name that is not one of [`ProviderKind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider `{0}` (expected one of: {known})", known = known_tokens())]
pub struct UnknownProvider(pub String);

/// Every provider's token, comma-separated, so the error lists a new provider by itself.
fn known_tokens() -> String {
    ProviderKind::ALL.map(ProviderKind::token).join(", ")
}

impl ProviderKind {
    /// Every provider, in a stable order.
    pub const ALL: [ProviderKind; 6] = [
        ProviderKind::Local,
        ProviderKind::AlibabaEci,
        ProviderKind::AzureAci,
        ProviderKind::GcpCloudrun,
        ProviderKind::GcpBatch,
        ProviderKind::AwsFargate,
    ];

    /// The provider's name in subjects, configuration and logs.
    pub fn token(self) -> &'static str {
        match self {
            ProviderKind::Local => "local",
            ProviderKind::AlibabaEci => "alibaba-eci",
            ProviderKind::AzureAci => "azure-aci",
            ProviderKind::GcpCloudrun => "gcp-cloudrun",
            ProviderKind::GcpBatch => "gcp-batch",
            ProviderKind::AwsFargate => "aws-fargate",
        }
    }
}

impl std::str::FromStr for ProviderKind {
    type Err = UnknownProvider;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProviderKind::ALL
            .into_iter()
            .find(|p| p.token() == s)
            .ok_or_else(|| UnknownProvider(s.to_owned()))
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.token())
    }
}

/// The GitHub scope a registration covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Scope {
    /// One enterprise (`/enterprises/{enterprise}`).
    Enterprise { enterprise: String },
    /// One organization (`/orgs/{org}`).
    Org { org: String },
    /// One repository (`/repos/{owner}/{repo}`).
    Repo { owner: String, repo: String },
}

impl Scope {
    /// The REST path prefix of the scope's runner endpoints, e.g. `orgs/acme`.
    pub fn api_prefix(&self) -> String {
        match self {
            Scope::Enterprise { enterprise } => format!("enterprises/{enterprise}"),
            Scope::Org { org } => format!("orgs/{org}"),
            Scope::Repo { owner, repo } => format!("repos/{owner}/{repo}"),
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.api_prefix())
    }
}

/// A GitHub `workflow_job`, as much of it as the system needs to act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRef {
    /// `workflow_job.id`.
    pub job_id: u64,
    /// `workflow_job.run_id`.
    pub run_id: u64,
    /// `repository.full_name`, `owner/name`.
    pub repo: String,
    /// `workflow_job.labels`, as the workflow wrote them.
    pub labels: Vec<String>,
    /// `workflow_job.name`, for logs.
    #[serde(default)]
    pub name: String,
}

/// Where a runner attaches to the network. Each field is used by the providers it applies to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// Alibaba vSwitch id (`vsw-…`).
    #[serde(default)]
    pub vswitch: Option<String>,
    /// Alibaba security group id (`sg-…`).
    #[serde(default)]
    pub security_group: Option<String>,
    /// Azure subnet resource id or GCP subnetwork name.
    #[serde(default)]
    pub subnet: Option<String>,
}

/// Everything a provider needs to start one runner, resolved from a job's labels over its
/// registration's defaults (job label > registration > tenant > built-in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerSpec {
    /// Where the runner is hosted.
    pub provider: ProviderKind,
    /// The provider-specific account or project section of the tenant's configuration.
    #[serde(default)]
    pub region: Option<String>,
    /// vCPU in thousandths (`cpu-0.5` → 500).
    pub cpu_millis: u32,
    /// Memory in MiB (`memory-4` → 4096).
    pub memory_mib: u32,
    /// The container image, with its tag.
    pub image: String,
    /// Network attachment.
    #[serde(default)]
    pub network: Network,
    /// An object-storage bucket mounted into the work directory (`disk-<bucket>`).
    #[serde(default)]
    pub disk_bucket: Option<String>,
    /// Whether the runner needs docker-in-docker (a privileged container).
    #[serde(default)]
    pub dind: bool,
    /// The GitHub runner group id the runner joins.
    #[serde(default)]
    pub runner_group_id: u64,
    /// The labels the runner registers with; they cover the job's labels.
    pub labels: Vec<String>,
    /// Labels put on the cloud instance for billing.
    #[serde(default)]
    pub charge_labels: Vec<String>,
    /// The hard limit on the runner's lifetime, in seconds.
    #[serde(default)]
    pub max_runtime_secs: u64,
}

/// How a failure should be treated by whoever sees it. Every crate's error type maps to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Retry with backoff: 5xx, throttling, timeouts, connection errors.
    Transient,
    /// The thing is not there. For a delete, that is success.
    NotFound,
    /// A quota or capacity limit: retry later, slower.
    Quota,
    /// Retrying will not help: bad request, bad credentials, forbidden.
    Permanent,
}

impl ErrorKind {
    /// Whether retrying the same call may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Transient | ErrorKind::Quota)
    }
}

/// What a platform can host: plain data, so the scheduler can check a shape at admission
/// without holding the cloud's credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct Capabilities {
    /// Allowed (cpu millis, memory MiB) pairs; empty means any within the maxima.
    pub shapes: Vec<(u32, u32)>,
    pub max_cpu_millis: u32,
    pub max_memory_mib: u32,
    /// Privileged docker-in-docker.
    pub dind: bool,
    /// Object-storage bucket mounts.
    pub disk_mount: bool,
}

impl Capabilities {
    /// Whether the platform can host a runner of this size.
    pub fn allows(&self, cpu_millis: u32, memory_mib: u32) -> bool {
        if self.shapes.is_empty() {
            cpu_millis <= self.max_cpu_millis && memory_mib <= self.max_memory_mib
        } else {
            self.shapes.contains(&(cpu_millis, memory_mib))
        }
    }
}
