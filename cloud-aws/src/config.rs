//! [`AwsConfig`]: where and as whom the provider talks to AWS, and what it may launch.
//!
//! Every endpoint can be pointed at the local simulator. Secrets are `SecretString`s inside
//! [`CredentialSource`], so the config's `Debug` output never shows them.

use std::collections::BTreeMap;

use crate::credentials::CredentialSource;

/// Where tasks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Capacity {
    /// `launchType: FARGATE`.
    #[default]
    OnDemand,
    /// The `FARGATE_SPOT` capacity provider only; no capacity is a `Quota` error.
    Spot,
    /// `FARGATE_SPOT`, and when it has no capacity, `FARGATE` within the same create.
    SpotWithFallback,
}

/// Configuration of one Fargate provider (one account, region and cluster).
#[derive(Debug, Clone)]
pub struct AwsConfig {
    pub region: String,
    /// ECS endpoint; default `https://ecs.{region}.amazonaws.com`.
    pub ecs_endpoint: String,
    /// Secrets Manager endpoint the controller calls; default
    /// `https://secretsmanager.{region}.amazonaws.com`.
    pub secrets_endpoint: String,
    /// The Secrets Manager endpoint the task's entrypoint calls (default: the same).
    pub task_secrets_endpoint: Option<String>,
    pub credentials: CredentialSource,
    /// Cluster name or ARN (it must have the `FARGATE` / `FARGATE_SPOT` capacity providers).
    pub cluster: String,
    /// This deployment's controller id: on every task and secret, and the filter for `list`.
    pub controller_id: String,
    /// The task role: the only permission it needs is reading its own task's secret.
    pub task_role_arn: String,
    /// That role's unique id (`AROA…`, `aws iam get-role … RoleId`): a task's session is
    /// `{role id}:{task id}` (`aws:userid`), which the secret's reader tag names.
    pub task_role_id: String,
    /// The execution role (image pulls from ECR, logs); optional for public images.
    pub execution_role_arn: Option<String>,
    /// Subnets tasks may use (`subnet-<id>` labels must be in it); the first is the default.
    pub subnets: Vec<String>,
    /// Security groups tasks may use (`sg-<id>` labels must be in it).
    pub security_groups: Vec<String>,
    /// Security groups used when the spec names none.
    pub default_security_groups: Vec<String>,
    /// `assignPublicIp: ENABLED` (a public subnet without a NAT gateway needs it to pull).
    pub assign_public_ip: bool,
    /// Where tasks run, unless `capacity_by_registration` names the request's registration.
    pub capacity: Capacity,
    /// Per-registration overrides of `capacity` (registration name → capacity).
    pub capacity_by_registration: BTreeMap<String, Capacity>,
    /// Secret names are `{secret_prefix}{controller_id}/{runner}`.
    pub secret_prefix: String,
    /// Caps on top of Fargate's own (16 vCPU / 120 GiB).
    pub max_cpu_millis: u32,
    pub max_memory_mib: u32,
    /// Extra, non-secret environment variables for the runner container.
    pub env: BTreeMap<String, String>,
    /// Timeout of each HTTP call, in seconds.
    pub request_timeout_secs: u64,
}

impl AwsConfig {
    /// A config for the public endpoints of `region`, every optional field at its default.
    pub fn new(
        region: impl Into<String>,
        credentials: CredentialSource,
        cluster: impl Into<String>,
        controller_id: impl Into<String>,
        task_role_arn: impl Into<String>,
        task_role_id: impl Into<String>,
        subnets: Vec<String>,
    ) -> Self {
        let region = region.into();
        Self {
            ecs_endpoint: format!("https://ecs.{region}.amazonaws.com"),
            secrets_endpoint: format!("https://secretsmanager.{region}.amazonaws.com"),
            task_secrets_endpoint: None,
            region,
            credentials,
            cluster: cluster.into(),
            controller_id: controller_id.into(),
            task_role_arn: task_role_arn.into(),
            task_role_id: task_role_id.into(),
            execution_role_arn: None,
            subnets,
            security_groups: Vec::new(),
            default_security_groups: Vec::new(),
            assign_public_ip: false,
            capacity: Capacity::OnDemand,
            capacity_by_registration: BTreeMap::new(),
            secret_prefix: "shr-jit/".into(),
            max_cpu_millis: 16_000,
            max_memory_mib: 120 * 1024,
            env: BTreeMap::new(),
            request_timeout_secs: 30,
        }
    }

    /// The capacity runners of `registration` use.
    pub fn capacity_for(&self, registration: &str) -> Capacity {
        self.capacity_by_registration
            .get(registration)
            .copied()
            .unwrap_or(self.capacity)
    }

    /// Points both ECS and Secrets Manager (for the controller and the task) at `base_url`.
    pub fn with_endpoint(mut self, base_url: &str) -> Self {
        let base = base_url.trim_end_matches('/').to_owned();
        self.ecs_endpoint.clone_from(&base);
        self.secrets_endpoint = base;
        self
    }
}
