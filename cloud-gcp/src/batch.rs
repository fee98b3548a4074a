//! [`BatchProvider`]: one Cloud Batch job per runner, for docker-in-docker.
//!
//! Create stores the JIT config as a Secret Manager secret and creates job `{runner name}` with
//! one task whose container gets it through `environment.secretVariables`; with `spec.dind` the
//! container runs `--privileged` and its command starts dockerd before `run.sh`. The container
//! command (`entrypoint` + `commands`) starts `/home/runner/run.sh`: the official image has
//! none. Batch starts the job by itself.
//!
//! # Guarantees
//! - Create is idempotent: `ALREADY_EXISTS` for a job labelled with the same runner and
//!   controller is success.
//! - Delete waits for the delete operation; a missing job (404, before or during the
//!   operation) is success; the secret goes with the job; another controller's job is never
//!   touched.
//! - `get` and `list` only see jobs labelled with this controller id (`list` asks the server to
//!   filter by label and checks again).

use std::collections::BTreeMap;

use bus_schema::{ErrorKind, ProviderKind};
use providers::{Capabilities, CreateRequest, Instance, InstanceStatus, Provider, ProviderError};
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{Api, instance};
use crate::cloudrun::{DEFAULT_TIMEOUT_SECS, JIT_ENV};
use crate::config::GcpConfig;
use crate::error::GcpError;
use crate::labels::{job_name, sanitize_value, to_labels};
use crate::secrets;

/// Where a `disk-<bucket>` bucket is mounted on the VM and in the container.
const BUCKET_MOUNT: &str = "/mnt/disks/work";
const WORK_DIR: &str = "/home/runner/_work";
const KIND: ProviderKind = ProviderKind::GcpBatch;

/// Runners as Cloud Batch jobs.
#[derive(Debug)]
pub struct BatchProvider {
    config: GcpConfig,
    api: Api,
}

impl BatchProvider {
    /// A provider for `config`; fails when the service-account key cannot be used.
    pub fn new(config: GcpConfig) -> Result<Self, GcpError> {
        let api = Api::new(&config)?;
        Ok(Self { config, api })
    }

    fn jobs_url(&self) -> String {
        format!(
            "{}/v1/{}/jobs",
            self.config.endpoints.batch,
            self.config.parent()
        )
    }

    fn job_url(&self, name: &str) -> String {
        format!("{}/{name}", self.jobs_url())
    }

    fn job_body(
        &self,
        request: &CreateRequest,
        labels: &BTreeMap<String, String>,
        secret_version: &str,
    ) -> Value {
        let spec = &request.spec;
        let max_run = match spec.max_runtime_secs {
            0 => DEFAULT_TIMEOUT_SECS,
            s => s,
        };
        let command = providers::command::runner_command(
            self.config.runner_command.as_deref(),
            providers::command::JitFrom::Env,
            spec.dind,
        );
        let (entrypoint, commands) = command.split_first().map_or_else(
            || (String::new(), Vec::new()),
            |(first, rest)| (first.clone(), rest.to_vec()),
        );
        // `entrypoint` replaces the image's ENTRYPOINT; `commands` are its arguments.
        let mut container =
            json!({ "imageUri": spec.image, "entrypoint": entrypoint, "commands": commands });
        if spec.dind {
            container["options"] = json!("--privileged");
        }
        let mut task = json!({
            "computeResource": { "cpuMilli": spec.cpu_millis, "memoryMib": spec.memory_mib },
            "maxRunDuration": format!("{max_run}s"),
            "maxRetryCount": 0,
        });
        if let Some(bucket) = &spec.disk_bucket {
            container["volumes"] = json!([format!("{BUCKET_MOUNT}:{WORK_DIR}")]);
            task["volumes"] =
                json!([{ "gcs": { "remotePath": bucket }, "mountPath": BUCKET_MOUNT }]);
        }
        task["runnables"] = json!([{
            "container": container,
            "environment": { "secretVariables": { JIT_ENV: secret_version } },
        }]);
        let mut allocation = json!({ "labels": labels });
        if let Some(account) = &self.config.runner_service_account {
            allocation["serviceAccount"] = json!({ "email": account });
        }
        let subnetwork = spec
            .network
            .subnet
            .clone()
            .or_else(|| self.config.subnetwork.clone());
        if self.config.network.is_some() || subnetwork.is_some() {
            let mut nic = json!({});
            if let Some(network) = &self.config.network {
                nic["network"] = json!(self.qualify(network, "global/networks"));
            }
            if let Some(subnetwork) = subnetwork {
                let regional = format!("regions/{}/subnetworks", self.config.region);
                nic["subnetwork"] = json!(self.qualify(&subnetwork, &regional));
            }
            allocation["network"] = json!({ "networkInterfaces": [nic] });
        }
        json!({
            "labels": labels,
            "taskGroups": [{ "taskCount": 1, "parallelism": 1, "taskSpec": task }],
            "allocationPolicy": allocation,
            "logsPolicy": { "destination": "CLOUD_LOGGING" },
        })
    }

    /// A bare network name as `projects/{p}/{collection}/{name}`; paths and URLs unchanged.
    fn qualify(&self, name: &str, collection: &str) -> String {
        if name.contains('/') {
            name.to_owned()
        } else {
            format!("projects/{}/{collection}/{name}", self.config.project)
        }
    }

    async fn fetch(&self, name: &str) -> Result<Option<Value>, GcpError> {
        match self
            .api
            .call("get job", Method::GET, &self.job_url(name), &[], None)
            .await
        {
            Ok(job) => Ok(Some(job)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn ours(&self, job: &Value) -> bool {
        job["labels"][providers::tags::CONTROLLER].as_str()
            == Some(sanitize_value(&self.config.controller_id).as_str())
    }

    async fn create_job(&self, request: &CreateRequest) -> Result<Instance, GcpError> {
        let name = job_name(&request.runner_name)?;
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
            Ok(job) => job,
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
        Ok(instance(&job, status(&job)))
    }

    async fn delete_job(&self, runner_name: &str) -> Result<(), GcpError> {
        let name = job_name(runner_name)?;
        if let Some(job) = self.fetch(name).await? {
            if !self.ours(&job) {
                return Ok(());
            }
            let deleted = self
                .api
                .call("delete job", Method::DELETE, &self.job_url(name), &[], None)
                .await;
            let waited = match deleted {
                Ok(op) => {
                    self.api
                        .wait("delete job", &self.config.endpoints.batch, "v1", op)
                        .await
                }
                Err(e) => Err(e),
            };
            match waited {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        secrets::delete(&self.api, &self.config, &secrets::secret_id(name)).await
    }

    async fn list_jobs(&self) -> Result<Vec<Instance>, GcpError> {
        let filter = format!(
            "labels.{}=\"{}\"",
            providers::tags::CONTROLLER,
            sanitize_value(&self.config.controller_id)
        );
        let jobs = self
            .api
            .list_all(
                "list jobs",
                &self.jobs_url(),
                &[("filter", filter.as_str())],
                "jobs",
            )
            .await?;
        Ok(jobs
            .iter()
            .filter(|job| self.ours(job))
            .map(|job| instance(job, status(job)))
            .collect())
    }
}

#[async_trait::async_trait]
impl Provider for BatchProvider {
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
        crate::settings::batch_capabilities()
    }
}

/// The largest task this provider asks Batch for (an n2-standard-96 VM).
pub const MAX_CPU_MILLIS: u32 = 96_000;
/// The largest task memory, in MiB (384 GiB).
pub const MAX_MEMORY_MIB: u32 = 384 * 1024;

fn status(job: &Value) -> InstanceStatus {
    match job["status"]["state"].as_str() {
        Some("QUEUED" | "SCHEDULED") => InstanceStatus::Pending,
        Some("RUNNING") => InstanceStatus::Running,
        Some("SUCCEEDED" | "FAILED" | "DELETION_IN_PROGRESS" | "CANCELLED") => {
            InstanceStatus::Stopped
        }
        _ => InstanceStatus::Unknown,
    }
}
