//! [`CloudRunProvider`]: one Cloud Run v2 job per runner, run once.
//!
//! Create stores the JIT config as a Secret Manager secret, creates job `{runner name}` whose
//! container reads it through `valueSource.secretKeyRef`, waits for the create operation, and
//! runs the job. The run operation is not awaited: it completes only when the execution ends.
//!
//! # Guarantees
//! - Create is idempotent: `ALREADY_EXISTS` for a job labelled with the same runner and
//!   controller is success, and the job is run if it has no execution yet.
//! - Delete removes the job (and its executions) and the secret; missing is success; a job of
//!   another controller is never touched.
//! - `get` and `list` only see jobs labelled with this controller id.
//!
//! # Caveats
//! - Two concurrent creates of the same runner may both see "no execution" and run the job
//!   twice; the JIT config is single-use, so the second runner fails to register.

use std::collections::BTreeMap;

use bus_schema::ProviderKind;
use providers::{Capabilities, CreateRequest, Instance, InstanceStatus, Provider, ProviderError};
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{Api, instance};
use crate::config::GcpConfig;
use crate::error::GcpError;
use crate::labels::{job_name, sanitize_value, to_labels};
use crate::secrets;

/// The env var the runner image reads its JIT config from.
pub const JIT_ENV: &str = "ACTIONS_RUNNER_INPUT_JITCONFIG";
/// Used when the spec sets no maximum runtime.
pub const DEFAULT_TIMEOUT_SECS: u64 = 6 * 3600;
/// Cloud Run's longest task timeout (168 hours).
pub const MAX_TIMEOUT_SECS: u64 = 168 * 3600;
const KIND: ProviderKind = ProviderKind::GcpCloudrun;

/// Runners as Cloud Run v2 jobs.
#[derive(Debug)]
pub struct CloudRunProvider {
    config: GcpConfig,
    api: Api,
}

impl CloudRunProvider {
    /// A provider for `config`; fails when the service-account key cannot be used.
    pub fn new(config: GcpConfig) -> Result<Self, GcpError> {
        let api = Api::new(&config)?;
        Ok(Self { config, api })
    }

    fn jobs_url(&self) -> String {
        format!(
            "{}/v2/{}/jobs",
            self.config.endpoints.run,
            self.config.parent()
        )
    }

    fn job_url(&self, name: &str) -> String {
        format!("{}/{name}", self.jobs_url())
    }

    /// The job body for `request`, referencing secret `secret_version`.
    fn job_body(
        &self,
        request: &CreateRequest,
        labels: &BTreeMap<String, String>,
        secret_version: &str,
    ) -> Value {
        let spec = &request.spec;
        let (secret, version) = split_version(secret_version);
        let timeout = match spec.max_runtime_secs {
            0 => DEFAULT_TIMEOUT_SECS,
            s => s.min(MAX_TIMEOUT_SECS),
        };
        let command = providers::command::runner_command(
            self.config.runner_command.as_deref(),
            providers::command::JitFrom::Env,
            false,
        );
        let mut container = json!({
            "name": "runner",
            "image": spec.image,
            "command": command,
            "resources": { "limits": {
                "cpu": cpu_quantity(spec.cpu_millis),
                "memory": memory_quantity(spec.memory_mib),
            }},
            "env": [{
                "name": JIT_ENV,
                "valueSource": { "secretKeyRef": { "secret": secret, "version": version } },
            }],
        });
        let mut task = json!({
            "containers": [],
            "maxRetries": 0,
            "timeout": format!("{timeout}s"),
            "executionEnvironment": "EXECUTION_ENVIRONMENT_GEN2",
        });
        if let Some(bucket) = &spec.disk_bucket {
            container["volumeMounts"] =
                json!([{ "name": "work", "mountPath": "/home/runner/_work" }]);
            task["volumes"] = json!([{ "name": "work", "gcs": { "bucket": bucket } }]);
        }
        task["containers"] = json!([container]);
        if let Some(account) = &self.config.runner_service_account {
            task["serviceAccount"] = json!(account);
        }
        let subnetwork = spec
            .network
            .subnet
            .clone()
            .or_else(|| self.config.subnetwork.clone());
        if self.config.network.is_some() || subnetwork.is_some() {
            let mut nic = json!({});
            if let Some(network) = &self.config.network {
                nic["network"] = json!(network);
            }
            if let Some(subnetwork) = subnetwork {
                nic["subnetwork"] = json!(subnetwork);
            }
            task["vpcAccess"] = json!({ "networkInterfaces": [nic], "egress": "ALL_TRAFFIC" });
        }
        json!({
            "labels": labels,
            "template": { "labels": labels, "taskCount": 1, "parallelism": 1, "template": task },
        })
    }

    /// Runs job `name`; the run operation is not awaited (it ends with the execution).
    async fn run(&self, name: &str) -> Result<(), GcpError> {
        let url = format!("{}:run", self.job_url(name));
        let op = self
            .api
            .call("run job", Method::POST, &url, &[], Some(&json!({})))
            .await?;
        if op["done"].as_bool() == Some(true) && op.get("error").is_some() {
            // Finished already (a failed start): surface it.
            self.api
                .wait("run job", &self.config.endpoints.run, "v2", op)
                .await?;
        }
        Ok(())
    }

    async fn fetch(&self, name: &str) -> Result<Option<Value>, GcpError> {
        match self
            .api
            .call("get job", Method::GET, &self.job_url(name), &[], None)
            .await
        {
            Ok(job) => Ok(Some(job)),
            Err(e) if e.kind() == bus_schema::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn ours(&self, job: &Value) -> bool {
        job["labels"][providers::tags::CONTROLLER].as_str()
            == Some(sanitize_value(&self.config.controller_id).as_str())
    }

    async fn create_job(&self, request: &CreateRequest) -> Result<Instance, GcpError> {
        let name = job_name(&request.runner_name)?;
        if request.spec.dind {
            return Err(GcpError::Api {
                operation: "create job",
                http: 400,
                status: "INVALID_ARGUMENT".to_owned(),
                message: "Cloud Run cannot run privileged containers; use gcp-batch for dind"
                    .to_owned(),
            });
        }
        let labels = to_labels(&request.tags());
        let version = secrets::put(
            &self.api,
            &self.config,
            &secrets::secret_id(name),
            &labels,
            &request.jit_config,
        )
        .await?;
        let body = self.job_body(request, &labels, &version);
        let created = self
            .api
            .call(
                "create job",
                Method::POST,
                &self.jobs_url(),
                &[("jobId", name)],
                Some(&body),
            )
            .await;
        let job = match created {
            Ok(op) => {
                self.api
                    .wait("create job", &self.config.endpoints.run, "v2", op)
                    .await?
            }
            Err(e) if e.is_already_exists() => {
                let job = self.fetch(name).await?.ok_or(e)?;
                let runner = sanitize_value(&request.runner_name);
                if !self.ours(&job)
                    || job["labels"][providers::tags::RUNNER].as_str() != Some(runner.as_str())
                {
                    return Err(GcpError::Foreign {
                        operation: "create job",
                        name: name.to_owned(),
                    });
                }
                job
            }
            Err(e) => return Err(e),
        };
        if job["latestCreatedExecution"]["name"].as_str().is_none() {
            self.run(name).await?;
            return Ok(instance(&job, InstanceStatus::Pending));
        }
        Ok(instance(&job, status(&job)))
    }

    async fn delete_job(&self, runner_name: &str) -> Result<(), GcpError> {
        let name = job_name(runner_name)?;
        match self.fetch(name).await? {
            Some(job) if !self.ours(&job) => return Ok(()),
            Some(_) => {
                let deleted = self
                    .api
                    .call("delete job", Method::DELETE, &self.job_url(name), &[], None)
                    .await;
                match deleted {
                    Ok(op) => {
                        match self
                            .api
                            .wait("delete job", &self.config.endpoints.run, "v2", op)
                            .await
                        {
                            Ok(_) => {}
                            Err(e) if e.kind() == bus_schema::ErrorKind::NotFound => {}
                            Err(e) => return Err(e),
                        }
                    }
                    Err(e) if e.kind() == bus_schema::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            None => {}
        }
        secrets::delete(&self.api, &self.config, &secrets::secret_id(name)).await
    }

    async fn list_jobs(&self) -> Result<Vec<Instance>, GcpError> {
        let jobs = self
            .api
            .list_all("list jobs", &self.jobs_url(), &[], "jobs")
            .await?;
        Ok(jobs
            .iter()
            .filter(|job| self.ours(job))
            .map(|job| instance(job, status(job)))
            .collect())
    }
}

#[async_trait::async_trait]
impl Provider for CloudRunProvider {
    fn kind(&self) -> ProviderKind {
        KIND
    }

    async fn create(&self, request: &CreateRequest) -> Result<Instance, ProviderError> {
        self.create_job(request)
            .await
            .map_err(|e| e.into_provider(KIND, "create"))
    }

    async fn delete(&self, runner_name: &str) -> Result<(), ProviderError> {
        self.delete_job(runner_name)
            .await
            .map_err(|e| e.into_provider(KIND, "delete"))
    }

    async fn get(&self, runner_name: &str) -> Result<Option<Instance>, ProviderError> {
        let name = job_name(runner_name).map_err(|e| e.into_provider(KIND, "get"))?;
        let job = self
            .fetch(name)
            .await
            .map_err(|e| e.into_provider(KIND, "get"))?;
        Ok(job
            .filter(|job| self.ours(job))
            .map(|job| instance(&job, status(&job))))
    }

    async fn list(&self) -> Result<Vec<Instance>, ProviderError> {
        self.list_jobs()
            .await
            .map_err(|e| e.into_provider(KIND, "list"))
    }

    fn capabilities(&self) -> Capabilities {
        crate::settings::cloudrun_capabilities()
    }
}

/// `projects/p/secrets/s/versions/n` → (`s`, `n`).
fn split_version(version_name: &str) -> (&str, &str) {
    let mut parts = version_name.rsplit('/');
    let version = parts.next().unwrap_or("latest");
    let _ = parts.next();
    let secret = parts.next().unwrap_or_default();
    (secret, version)
}

/// A Kubernetes-style CPU quantity: `2` or `500m`.
pub fn cpu_quantity(millis: u32) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// A memory quantity: `4Gi` or `512Mi`.
pub fn memory_quantity(mib: u32) -> String {
    if mib.is_multiple_of(1024) {
        format!("{}Gi", mib / 1024)
    } else {
        format!("{mib}Mi")
    }
}

fn status(job: &Value) -> InstanceStatus {
    let execution = &job["latestCreatedExecution"];
    if execution["name"].as_str().is_none() {
        return InstanceStatus::Pending;
    }
    match execution["completionStatus"].as_str() {
        Some("EXECUTION_PENDING") => InstanceStatus::Pending,
        Some("EXECUTION_RUNNING") => InstanceStatus::Running,
        Some("EXECUTION_SUCCEEDED" | "EXECUTION_FAILED" | "EXECUTION_CANCELLED") => {
            InstanceStatus::Stopped
        }
        _ => InstanceStatus::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_and_secret_refs() {
        assert_eq!(cpu_quantity(2000), "2");
        assert_eq!(cpu_quantity(500), "500m");
        assert_eq!(memory_quantity(4096), "4Gi");
        assert_eq!(memory_quantity(512), "512Mi");
        assert_eq!(
            split_version("projects/p/secrets/shr-a-1-1-jit/versions/3"),
            ("shr-a-1-1-jit", "3")
        );
    }
}
