//! [`FargateProvider`]: runners as ECS tasks on Fargate, their JIT configs in Secrets Manager.
//!
//! - create: find the runner's task (`ListTasks` by `startedBy`, running then stopped, and
//!   `DescribeTasks` with tags); if there is none, put the JIT config in the runner's secret
//!   (`CreateSecret`, or `PutSecretValue` when it exists), make sure the image's task
//!   definition exists, `RunTask` with a `clientToken` derived from the runner name (a racing
//!   second create gets the same task back), and tag the secret with the task's session so
//!   only that task can read it. The capacity is the registration's
//!   ([`AwsConfig::capacity_for`]); with [`Capacity::SpotWithFallback`], a Spot capacity
//!   failure is logged and the same create runs the task on `FARGATE`.
//! - delete: `StopTask` the runner's running tasks, then `DeleteSecret` without recovery;
//!   missing tasks and a missing secret are success.
//! - get: the runner's task by `startedBy`; list: the cluster's tasks (running and stopped)
//!   carrying our controller tag.
//! - The JIT config is only ever in the `CreateSecret`/`PutSecretValue` body; nothing a
//!   describe call returns holds it, and nothing here logs a request body.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use bus_schema::ProviderKind;
use providers::{Capabilities, CreateRequest, Instance, InstanceStatus, Provider, ProviderError};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::client::{Client, Service};
use crate::config::{AwsConfig, Capacity};
use crate::entrypoint;
use crate::error::AwsError;
use crate::names;
use crate::shapes;

/// The runner container's name in every task definition.
pub const CONTAINER_NAME: &str = "runner";
/// The secret tag naming the one session (`{role id}:{task id}`) that may read it.
pub const READER_TAG: &str = "shr-reader";
/// How often create tries to tag a started task's secret before it gives up for this round.
const GRANT_TRIES: u32 = 6;
/// The first pause between those tries; it doubles (0.2 + 0.4 + … + 3.2 s in all).
const GRANT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(200);
/// The `StopTask` reason of a delete; ECS shows it as the task's `stoppedReason`, and a task
/// stopped with it counts as deleted (ECS keeps stopped tasks visible for about an hour).
pub const DELETED_REASON: &str = "shr: runner deleted";
/// Fargate's ceilings.
pub const HARD_MAX_CPU_MILLIS: u32 = 16_000;
pub const HARD_MAX_MEMORY_MIB: u32 = 120 * 1024;
/// Environment variables the provider sets on the runner container; `env` must not.
pub const RESERVED_ENV: [&str; 4] = [
    entrypoint::JIT_ENV,
    entrypoint::SECRET_ENV,
    entrypoint::REGION_ENV,
    entrypoint::ENDPOINT_ENV,
];

/// Where and how big one task is.
#[derive(Debug)]
struct Placement {
    cpu_units: u32,
    memory_mib: u32,
    subnets: Vec<String>,
    groups: Vec<String>,
}

/// Hosts runners on ECS Fargate.
#[derive(Debug)]
pub struct FargateProvider {
    cfg: AwsConfig,
    client: Client,
    /// image → task definition ARN registered (or found) by this process.
    task_definitions: Mutex<HashMap<String, String>>,
}

impl FargateProvider {
    /// Checks the configuration and builds the HTTP client. No network call is made.
    pub fn new(cfg: AwsConfig) -> Result<Self, ProviderError> {
        Self::build(cfg).map_err(ProviderError::from)
    }

    fn build(cfg: AwsConfig) -> Result<Self, AwsError> {
        for (field, value) in [
            ("region", &cfg.region),
            ("cluster", &cfg.cluster),
            ("controller_id", &cfg.controller_id),
            ("task_role_arn", &cfg.task_role_arn),
            ("task_role_id", &cfg.task_role_id),
        ] {
            if value.trim().is_empty() {
                return Err(AwsError::Config(format!("{field} is empty")));
            }
        }
        if cfg.subnets.is_empty() {
            return Err(AwsError::Config(
                "subnets is empty (awsvpc tasks need one)".into(),
            ));
        }
        if let Some(sg) = cfg
            .default_security_groups
            .iter()
            .find(|sg| !cfg.security_groups.contains(sg))
        {
            return Err(AwsError::Config(format!(
                "default security group {sg} is not in security_groups"
            )));
        }
        if cfg.max_cpu_millis > HARD_MAX_CPU_MILLIS || cfg.max_memory_mib > HARD_MAX_MEMORY_MIB {
            return Err(AwsError::Config(format!(
                "max_cpu_millis/max_memory_mib above Fargate's {HARD_MAX_CPU_MILLIS} / {HARD_MAX_MEMORY_MIB}"
            )));
        }
        for reserved in RESERVED_ENV {
            if cfg.env.contains_key(reserved) {
                return Err(AwsError::Config(format!("env must not set {reserved}")));
            }
        }
        let client = Client::new(
            &cfg.region,
            &cfg.ecs_endpoint,
            &cfg.secrets_endpoint,
            cfg.credentials.clone(),
            Duration::from_secs(cfg.request_timeout_secs),
        )?;
        Ok(Self {
            cfg,
            client,
            task_definitions: Mutex::new(HashMap::new()),
        })
    }

    async fn ecs(&self, op: &'static str, target: &str, body: Value) -> Result<Value, AwsError> {
        self.client.call(op, Service::Ecs, target, &body).await
    }

    async fn secrets(
        &self,
        op: &'static str,
        target: &str,
        body: Value,
    ) -> Result<Value, AwsError> {
        self.client
            .call(op, Service::SecretsManager, target, &body)
            .await
    }

    /// Our tags for `req`, as ECS `{key, value}` pairs.
    fn ecs_tags(req: &CreateRequest) -> Vec<Value> {
        req.tags()
            .into_iter()
            .map(|(k, v)| json!({"key": k, "value": names::tag_value(&v)}))
            .collect()
    }

    /// The task ARNs `startedBy` the runner, with `desired` status (`RUNNING`/`STOPPED`).
    async fn task_arns(
        &self,
        op: &'static str,
        runner_name: &str,
        desired: &str,
    ) -> Result<Vec<String>, AwsError> {
        let mut arns = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let mut body = json!({
                "cluster": self.cfg.cluster,
                "startedBy": names::started_by(runner_name),
                "desiredStatus": desired,
            });
            if let Some(token) = &next {
                body["nextToken"] = json!(token);
            }
            let page = self.ecs(op, "ListTasks", body).await?;
            arns.extend(strings(&page["taskArns"]));
            match page["nextToken"].as_str() {
                Some(t) if !t.is_empty() => next = Some(t.to_owned()),
                _ => return Ok(arns),
            }
        }
    }

    /// `DescribeTasks` with tags for up to 100 ARNs.
    async fn describe(&self, op: &'static str, arns: &[String]) -> Result<Vec<Value>, AwsError> {
        let mut out = Vec::new();
        for chunk in arns.chunks(100) {
            let resp = self
                .ecs(
                    op,
                    "DescribeTasks",
                    json!({"cluster": self.cfg.cluster, "tasks": chunk, "include": ["TAGS"]}),
                )
                .await?;
            out.extend(resp["tasks"].as_array().cloned().unwrap_or_default());
        }
        Ok(out)
    }

    /// The runner's task (ours by tag), preferring a live one over a stopped one.
    async fn find(&self, op: &'static str, runner_name: &str) -> Result<Option<Value>, AwsError> {
        for desired in ["RUNNING", "STOPPED"] {
            let arns = self.task_arns(op, runner_name, desired).await?;
            if arns.is_empty() {
                continue;
            }
            let found = self
                .describe(op, &arns)
                .await?
                .into_iter()
                .filter(|t| self.ours(t) && tag(t, providers::tags::RUNNER) == Some(runner_name))
                .max_by_key(|t| t["createdAt"].as_f64().map(|f| f as i64));
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// Carries our controller tag and was not stopped by our own delete.
    fn ours(&self, task: &Value) -> bool {
        tag(task, providers::tags::CONTROLLER) == Some(self.cfg.controller_id.as_str())
            && task["stoppedReason"].as_str() != Some(DELETED_REASON)
    }

    fn secret_name(&self, runner_name: &str) -> String {
        names::secret_name(
            &self.cfg.secret_prefix,
            &self.cfg.controller_id,
            runner_name,
        )
    }

    /// Puts the JIT config in the runner's secret; returns the secret's ARN.
    async fn put_secret(&self, req: &CreateRequest) -> Result<String, AwsError> {
        const OP: &str = "create";
        let name = self.secret_name(&req.runner_name);
        let tags: Vec<Value> = req
            .tags()
            .into_iter()
            .map(|(k, v)| json!({"Key": k, "Value": names::tag_value(&v)}))
            .collect();
        let created = self
            .secrets(
                OP,
                "CreateSecret",
                json!({
                    "Name": name,
                    "Description": "GitHub Actions JIT runner config; deleted with the runner",
                    "SecretString": req.jit_config.expose(),
                    "ClientRequestToken": names::secret_request_token(&self.cfg.controller_id, &req.runner_name),
                    "Tags": tags,
                }),
            )
            .await;
        match created {
            Ok(resp) => Ok(resp["ARN"].as_str().unwrap_or(&name).to_owned()),
            Err(AwsError::Service { code, .. }) if code == "ResourceExistsException" => {
                // Left by an earlier attempt of the same runner: refresh its value.
                let resp = self
                    .secrets(
                        OP,
                        "PutSecretValue",
                        json!({"SecretId": name, "SecretString": req.jit_config.expose()}),
                    )
                    .await?;
                Ok(resp["ARN"].as_str().unwrap_or(&name).to_owned())
            }
            Err(e) => Err(e),
        }
    }

    /// Lets exactly the session of `task_arn` read the secret.
    /// Tags `secret` readable by the task `task_arn`. The task is already running and its
    /// entrypoint waits for this grant for about a minute, longer than a retry of the whole
    /// create may take to come round (the provisioner backs off up to 30 s), so transient
    /// failures are retried here, [`GRANT_TRIES`] times with a short backoff.
    async fn grant_reader(&self, secret: &str, task_arn: &str) -> Result<(), AwsError> {
        let task_id = task_arn.rsplit('/').next().unwrap_or(task_arn);
        let reader = format!("{}:{task_id}", self.cfg.task_role_id);
        let body = json!({"SecretId": secret, "Tags": [{"Key": READER_TAG, "Value": reader}]});
        let mut pause = GRANT_BACKOFF;
        for _ in 1..GRANT_TRIES {
            match self.secrets("create", "TagResource", body.clone()).await {
                Err(e) if e.kind().is_retryable() => {
                    tracing::warn!(task = %task_arn, error = %e, "granting the task its JIT secret failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                done => return done.map(drop),
            }
        }
        self.secrets("create", "TagResource", body).await.map(drop)
    }

    /// The task definition ARN for `image`: cached, found by family, or registered.
    async fn task_definition(&self, image: &str) -> Result<String, AwsError> {
        const OP: &str = "create";
        let mut cache = self.task_definitions.lock().await;
        if let Some(arn) = cache.get(image) {
            return Ok(arn.clone());
        }
        let family = names::family(&self.cfg.controller_id, image);
        let found = match self
            .ecs(
                OP,
                "DescribeTaskDefinition",
                json!({"taskDefinition": family}),
            )
            .await
        {
            Ok(resp) => {
                let td = &resp["taskDefinition"];
                let matches = td["containerDefinitions"][0]["image"].as_str() == Some(image)
                    && td["taskRoleArn"].as_str() == Some(self.cfg.task_role_arn.as_str())
                    && td["executionRoleArn"].as_str() == self.cfg.execution_role_arn.as_deref()
                    && td["status"].as_str() == Some("ACTIVE");
                matches
                    .then(|| td["taskDefinitionArn"].as_str().map(str::to_owned))
                    .flatten()
            }
            // ECS answers ClientException "Unable to describe task definition." for none.
            Err(AwsError::Service { code, .. }) if code == "ClientException" => None,
            Err(e) => return Err(e),
        };
        let arn = match found {
            Some(arn) => arn,
            None => {
                let mut body = json!({
                    "family": family,
                    "requiresCompatibilities": ["FARGATE"],
                    "networkMode": "awsvpc",
                    "cpu": "256",
                    "memory": "512",
                    "taskRoleArn": self.cfg.task_role_arn,
                    "runtimePlatform": {"operatingSystemFamily": "LINUX", "cpuArchitecture": "X86_64"},
                    "containerDefinitions": [{
                        "name": CONTAINER_NAME,
                        "image": image,
                        "essential": true,
                    }],
                    "tags": [{"key": providers::tags::CONTROLLER, "value": names::tag_value(&self.cfg.controller_id)}],
                });
                if let Some(role) = &self.cfg.execution_role_arn {
                    body["executionRoleArn"] = json!(role);
                }
                let resp = self.ecs(OP, "RegisterTaskDefinition", body).await?;
                let arn = resp["taskDefinition"]["taskDefinitionArn"]
                    .as_str()
                    .ok_or_else(|| AwsError::Service {
                        operation: OP,
                        status: 200,
                        code: "MissingTaskDefinitionArn".into(),
                        message: "RegisterTaskDefinition returned no taskDefinitionArn".into(),
                    })?
                    .to_owned();
                tracing::info!(%family, %arn, "task definition registered");
                arn
            }
        };
        cache.insert(image.to_owned(), arn.clone());
        Ok(arn)
    }

    /// Checks the spec against Fargate and the allow-lists; returns the task size (the
    /// smallest Fargate pair that covers the spec, [`shapes::covering`]), subnets and groups.
    fn placement(&self, req: &CreateRequest) -> Result<Placement, AwsError> {
        let spec = &req.spec;
        if spec.dind {
            return Err(AwsError::Spec(
                "Fargate does not run privileged containers (docker-in-docker)".into(),
            ));
        }
        if spec.disk_bucket.is_some() {
            return Err(AwsError::Spec(
                "disk-<bucket> mounts are not supported on Fargate".into(),
            ));
        }
        if spec.image.trim().is_empty() {
            return Err(AwsError::Spec("image is empty".into()));
        }
        let (cpu_units, memory_mib) = shapes::covering(
            spec.cpu_millis,
            spec.memory_mib,
            self.cfg.max_cpu_millis,
            self.cfg.max_memory_mib,
        )
        .ok_or_else(|| {
            AwsError::Spec(format!(
                "no Fargate size covers {} millicpu / {} MiB within this provider's {} / {}",
                spec.cpu_millis, spec.memory_mib, self.cfg.max_cpu_millis, self.cfg.max_memory_mib
            ))
        })?;
        // The `subnet-<id>` label arrives without its prefix (`0a1b`); a default from the
        // configuration may carry it (`subnet-0a1b`).
        let wanted = spec.network.subnet.as_ref().map(|s| {
            if s.starts_with("subnet-") {
                s.clone()
            } else {
                format!("subnet-{s}")
            }
        });
        let subnets = match &wanted {
            Some(s) if self.cfg.subnets.contains(s) => vec![s.clone()],
            Some(s) => {
                return Err(AwsError::Spec(format!(
                    "subnet {s} is not in this provider's subnets"
                )));
            }
            None => self.cfg.subnets.iter().take(1).cloned().collect(),
        };
        let groups = match &spec.network.security_group {
            Some(g) if self.cfg.security_groups.contains(g) => vec![g.clone()],
            Some(g) => {
                return Err(AwsError::Spec(format!(
                    "security group {g} is not in this provider's security_groups"
                )));
            }
            None => self.cfg.default_security_groups.clone(),
        };
        Ok(Placement {
            cpu_units,
            memory_mib,
            subnets,
            groups,
        })
    }

    /// One `RunTask` on `launch` (`FARGATE` or `FARGATE_SPOT`); its started task.
    async fn run_task(
        &self,
        req: &CreateRequest,
        task_definition: &str,
        secret_arn: &str,
        placement: &Placement,
        launch: &str,
    ) -> Result<Value, AwsError> {
        const OP: &str = "create";
        let mut env = vec![
            json!({"name": entrypoint::SECRET_ENV, "value": secret_arn}),
            json!({"name": entrypoint::REGION_ENV, "value": self.cfg.region}),
            json!({"name": entrypoint::ENDPOINT_ENV, "value": self.cfg.task_secrets_endpoint.as_deref().unwrap_or(&self.cfg.secrets_endpoint)}),
        ];
        env.extend(
            self.cfg
                .env
                .iter()
                .map(|(k, v)| json!({"name": k, "value": v})),
        );
        let mut awsvpc = json!({
            "subnets": placement.subnets,
            "assignPublicIp": if self.cfg.assign_public_ip { "ENABLED" } else { "DISABLED" },
        });
        if !placement.groups.is_empty() {
            awsvpc["securityGroups"] = json!(placement.groups);
        }
        let mut body = json!({
            "cluster": self.cfg.cluster,
            "taskDefinition": task_definition,
            "count": 1,
            "clientToken": names::client_token(&self.cfg.controller_id, &req.runner_name, launch),
            "startedBy": names::started_by(&req.runner_name),
            "tags": Self::ecs_tags(req),
            "networkConfiguration": {"awsvpcConfiguration": awsvpc},
            "overrides": {
                "cpu": placement.cpu_units.to_string(),
                "memory": placement.memory_mib.to_string(),
                "containerOverrides": [{
                    "name": CONTAINER_NAME,
                    "command": entrypoint::command(),
                    "environment": env,
                }],
            },
        });
        if launch == "FARGATE_SPOT" {
            body["capacityProviderStrategy"] =
                json!([{"capacityProvider": "FARGATE_SPOT", "weight": 1}]);
        } else {
            body["launchType"] = json!("FARGATE");
        }
        let resp = self.ecs(OP, "RunTask", body).await?;
        if let Some(task) = resp["tasks"].as_array().and_then(|t| t.first()) {
            return Ok(task.clone());
        }
        let reason = resp["failures"]
            .as_array()
            .and_then(|f| f.first())
            .map(|f| {
                format!(
                    "{}{}",
                    f["reason"].as_str().unwrap_or("unknown"),
                    f["detail"]
                        .as_str()
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default()
                )
            })
            .unwrap_or_else(|| "RunTask returned neither tasks nor failures".into());
        Err(AwsError::RunTaskFailure {
            operation: OP,
            reason,
        })
    }

    async fn create_inner(&self, req: &CreateRequest) -> Result<Instance, AwsError> {
        const OP: &str = "create";
        let placement = self.placement(req)?;
        if let Some(task) = self.find(OP, &req.runner_name).await? {
            // A crash may have come between RunTask and the grant: grant again.
            if let Some(arn) = task["taskArn"].as_str() {
                self.grant_reader(&self.secret_name(&req.runner_name), arn)
                    .await?;
            }
            return Ok(instance(&task));
        }
        let secret_arn = self.put_secret(req).await?;
        let task_definition = self.task_definition(&req.spec.image).await?;
        let launches: &[&str] = match self.cfg.capacity_for(&req.registration) {
            Capacity::OnDemand => &["FARGATE"],
            Capacity::Spot => &["FARGATE_SPOT"],
            Capacity::SpotWithFallback => &["FARGATE_SPOT", "FARGATE"],
        };
        let mut last = None;
        for (i, launch) in launches.iter().enumerate() {
            match self
                .run_task(req, &task_definition, &secret_arn, &placement, launch)
                .await
            {
                Ok(task) => {
                    let arn = task["taskArn"].as_str().unwrap_or_default().to_owned();
                    self.grant_reader(&secret_arn, &arn).await?;
                    tracing::info!(runner = %req.runner_name, task = %arn, launch, "task started");
                    return Ok(instance(&task));
                }
                Err(e) if e.is_capacity() && i + 1 < launches.len() => {
                    tracing::warn!(
                        runner = %req.runner_name,
                        registration = %req.registration,
                        error = %e,
                        "Fargate Spot has no capacity; falling back to on-demand FARGATE"
                    );
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| AwsError::Config("no launch type configured".into())))
    }

    async fn delete_inner(&self, runner_name: &str) -> Result<(), AwsError> {
        const OP: &str = "delete";
        let arns = self.task_arns(OP, runner_name, "RUNNING").await?;
        for task in self.describe(OP, &arns).await? {
            if !self.ours(&task) || tag(&task, providers::tags::RUNNER) != Some(runner_name) {
                continue;
            }
            let Some(arn) = task["taskArn"].as_str() else {
                continue;
            };
            let stopped = self
                .ecs(
                    OP,
                    "StopTask",
                    json!({"cluster": self.cfg.cluster, "task": arn, "reason": DELETED_REASON}),
                )
                .await;
            match stopped {
                Ok(_) => tracing::info!(runner = %runner_name, task = %arn, "task stopped"),
                // Gone between the list and the stop.
                Err(AwsError::Service { code, message, .. })
                    if code == "InvalidParameterException" && message.contains("not found") => {}
                Err(e) => return Err(e),
            }
        }
        let deleted = self
            .secrets(
                OP,
                "DeleteSecret",
                json!({"SecretId": self.secret_name(runner_name), "ForceDeleteWithoutRecovery": true}),
            )
            .await;
        match deleted {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn list_inner(&self) -> Result<Vec<Instance>, AwsError> {
        const OP: &str = "list";
        let mut out = Vec::new();
        for desired in ["RUNNING", "STOPPED"] {
            let mut next: Option<String> = None;
            loop {
                let mut body = json!({"cluster": self.cfg.cluster, "desiredStatus": desired});
                if let Some(token) = &next {
                    body["nextToken"] = json!(token);
                }
                let page = self.ecs(OP, "ListTasks", body).await?;
                let arns = strings(&page["taskArns"]);
                out.extend(
                    self.describe(OP, &arns)
                        .await?
                        .iter()
                        .filter(|t| self.ours(t))
                        .map(instance),
                );
                match page["nextToken"].as_str() {
                    Some(t) if !t.is_empty() => next = Some(t.to_owned()),
                    _ => break,
                }
            }
        }
        Ok(out)
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

/// The value of ECS tag `key` on a described task.
fn tag<'a>(task: &'a Value, key: &str) -> Option<&'a str> {
    task["tags"]
        .as_array()?
        .iter()
        .find(|t| t["key"].as_str() == Some(key))?["value"]
        .as_str()
}

/// The instance a described task is.
fn instance(task: &Value) -> Instance {
    let tags: BTreeMap<String, String> = task["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            Some((
                t["key"].as_str()?.to_owned(),
                t["value"].as_str()?.to_owned(),
            ))
        })
        .collect();
    let arn = task["taskArn"].as_str().unwrap_or_default();
    Instance {
        id: arn.to_owned(),
        runner_name: tags
            .get(providers::tags::RUNNER)
            .cloned()
            .or_else(|| task["startedBy"].as_str().map(str::to_owned))
            .unwrap_or_default(),
        status: status(task["lastStatus"].as_str(), task["desiredStatus"].as_str()),
        tags,
    }
}

/// Maps ECS `lastStatus` (and `desiredStatus`) to an [`InstanceStatus`].
fn status(last: Option<&str>, desired: Option<&str>) -> InstanceStatus {
    match (last, desired) {
        (_, Some("STOPPED")) => InstanceStatus::Stopped,
        (Some("PROVISIONING" | "PENDING" | "ACTIVATING"), _) => InstanceStatus::Pending,
        (Some("RUNNING"), _) => InstanceStatus::Running,
        (Some("DEACTIVATING" | "STOPPING" | "DEPROVISIONING" | "STOPPED" | "DELETED"), _) => {
            InstanceStatus::Stopped
        }
        _ => InstanceStatus::Unknown,
    }
}

#[async_trait]
impl Provider for FargateProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::AwsFargate
    }

    async fn create(&self, request: &CreateRequest) -> Result<Instance, ProviderError> {
        Ok(self.create_inner(request).await?)
    }

    async fn delete(&self, runner_name: &str) -> Result<(), ProviderError> {
        Ok(self.delete_inner(runner_name).await?)
    }

    async fn get(&self, runner_name: &str) -> Result<Option<Instance>, ProviderError> {
        Ok(self.find("get", runner_name).await?.as_ref().map(instance))
    }

    async fn list(&self) -> Result<Vec<Instance>, ProviderError> {
        Ok(self.list_inner().await?)
    }

    fn capabilities(&self) -> Capabilities {
        crate::settings::capabilities(self.cfg.max_cpu_millis, self.cfg.max_memory_mib)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_mapping() {
        assert_eq!(
            status(Some("PROVISIONING"), Some("RUNNING")),
            InstanceStatus::Pending
        );
        assert_eq!(
            status(Some("RUNNING"), Some("RUNNING")),
            InstanceStatus::Running
        );
        assert_eq!(
            status(Some("RUNNING"), Some("STOPPED")),
            InstanceStatus::Stopped
        );
        assert_eq!(status(Some("STOPPED"), None), InstanceStatus::Stopped);
        assert_eq!(status(None, None), InstanceStatus::Unknown);
    }
}
