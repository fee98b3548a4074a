//! [`EciProvider`]: runner instances as ECI container groups.
//!
//! # Guarantees
//! - `create` is idempotent by runner name: it first looks the name up among this
//!   controller's groups, and sends `ClientToken` = the runner name so a retried create that
//!   raced an earlier one gets the same `ContainerGroupId` back.
//! - The JIT config reaches the container only as a `ConfigFileVolume` file
//!   (`/etc/shr/jitconfig`); the container gets the file's path in
//!   `ACTIONS_RUNNER_INPUT_JITCONFIG_FILE`, never the content in env or arguments (ECI caps
//!   env values at 256 characters anyway).
//! - `get`, `delete` and `list` only see groups tagged with this controller id.
//! - `delete` of a missing group is success.
//!
//! # Caveats
//! - ECI has no secret-typed field: a `ConfigFileVolume` content is visible to whoever may
//!   describe the group with full detail in the account. Scope RAM access accordingly.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use bus_schema::{ErrorKind, ProviderKind};
use providers::{
    Capabilities, CreateRequest, Instance, InstanceStatus, Provider, ProviderError, tags,
};
use serde::Deserialize;
use sha1::Digest as _;

use crate::client::RpcClient;
use crate::config::EciConfig;
use crate::error::EciError;
use crate::rules;

/// Where the JIT config file is mounted in the container.
pub const JITCONFIG_DIR: &str = "/etc/shr";
/// The file name of the JIT config inside [`JITCONFIG_DIR`].
pub const JITCONFIG_FILE: &str = "jitconfig";
/// The env var that names the JIT config file.
pub const JITCONFIG_FILE_ENV: &str = "ACTIONS_RUNNER_INPUT_JITCONFIG_FILE";
/// The runner's work directory, where a `disk-<bucket>` mount goes.
pub const WORK_DIR: &str = "/home/runner/_work";
/// ECI's limits on tags.
const MAX_TAG_CHARS: usize = 128;
/// ECI's page size limit for `DescribeContainerGroups`.
const PAGE_LIMIT: &str = "20";

/// The ECI provider.
#[derive(Debug)]
pub struct EciProvider {
    client: RpcClient,
    config: EciConfig,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateResponse {
    container_group_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeResponse {
    #[serde(default)]
    next_token: String,
    #[serde(default)]
    container_groups: Vec<Group>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Group {
    container_group_id: String,
    #[serde(default)]
    container_group_name: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    tags: Vec<Tag>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Tag {
    key: String,
    #[serde(default)]
    value: String,
}

#[derive(Debug, Deserialize)]
struct Empty {}

impl EciProvider {
    /// Validates `config` and builds the HTTP client. Nothing is sent.
    pub fn new(config: EciConfig) -> Result<Self, ProviderError> {
        config
            .validate()
            .map_err(|e| e.into_provider("configure"))?;
        let client = RpcClient::new(
            config.endpoint_url(),
            config.access_key_id.clone(),
            config.access_key_secret.clone(),
            Duration::from_secs(config.timeout_secs),
        )
        .map_err(|e| e.into_provider("configure"))?;
        Ok(Self { client, config })
    }

    /// The `CreateContainerGroup` parameters for `request` (without the common ones).
    pub fn create_params(
        &self,
        request: &CreateRequest,
    ) -> Result<BTreeMap<String, String>, EciError> {
        let invalid = |reason: String| EciError::Invalid {
            action: "CreateContainerGroup",
            reason,
        };
        let spec = &request.spec;
        if !rules::valid_group_name(&request.runner_name) {
            return Err(invalid(format!(
                "runner name `{}` is not a valid ECI container group name \
                 (2-128 of [a-z0-9-], not starting or ending with `-`)",
                request.runner_name
            )));
        }
        if !self.capabilities().allows(spec.cpu_millis, spec.memory_mib) {
            return Err(invalid(format!(
                "{} millicpu / {} MiB is not an ECI vCPU/memory specification",
                spec.cpu_millis, spec.memory_mib
            )));
        }
        let vswitch = spec
            .network
            .vswitch
            .clone()
            .or_else(|| self.config.vswitch_id.clone())
            .ok_or_else(|| invalid("no vSwitch in the runner spec or the config".into()))?;
        let security_group = spec
            .network
            .security_group
            .clone()
            .or_else(|| self.config.security_group_id.clone())
            .ok_or_else(|| invalid("no security group in the runner spec or the config".into()))?;

        let mut p = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            p.insert(k.to_owned(), v);
        };
        let cpu = rules::format_cpu(spec.cpu_millis);
        let memory = rules::format_memory(spec.memory_mib);
        put("RegionId", self.config.region.clone());
        put("ContainerGroupName", request.runner_name.clone());
        put("ClientToken", client_token(&request.runner_name));
        put("Cpu", cpu.clone());
        put("Memory", memory.clone());
        put("VSwitchId", vswitch);
        put("SecurityGroupId", security_group);
        put("RestartPolicy", "Never".into());
        if spec.max_runtime_secs > 0 {
            put("ActiveDeadlineSeconds", spec.max_runtime_secs.to_string());
        }
        for (i, (key, value)) in request.tags().into_iter().enumerate() {
            put(&format!("Tag.{}.Key", i + 1), key);
            put(
                &format!("Tag.{}.Value", i + 1),
                value.chars().take(MAX_TAG_CHARS).collect(),
            );
        }

        put("Container.1.Name", "runner".into());
        put("Container.1.Image", spec.image.clone());
        put("Container.1.Cpu", cpu);
        put("Container.1.Memory", memory);
        put("Container.1.ImagePullPolicy", "IfNotPresent".into());
        let command = providers::command::runner_command(
            self.config.runner_command.as_deref(),
            providers::command::JitFrom::File,
            spec.dind,
        );
        for (i, part) in command.into_iter().enumerate() {
            put(&format!("Container.1.Command.{}", i + 1), part);
        }
        for (i, c) in self.config.registry_credentials.iter().enumerate() {
            let n = i + 1;
            put(
                &format!("ImageRegistryCredential.{n}.Server"),
                c.server.clone(),
            );
            put(
                &format!("ImageRegistryCredential.{n}.UserName"),
                c.username.clone(),
            );
            put(
                &format!("ImageRegistryCredential.{n}.Password"),
                secrecy::ExposeSecret::expose_secret(&c.password).to_owned(),
            );
        }
        if spec.dind {
            put("Container.1.SecurityContextPrivileged", "true".into());
        }
        put(
            "Container.1.EnvironmentVar.1.Key",
            JITCONFIG_FILE_ENV.into(),
        );
        put(
            "Container.1.EnvironmentVar.1.Value",
            format!("{JITCONFIG_DIR}/{JITCONFIG_FILE}"),
        );

        put("Volume.1.Name", "jitconfig".into());
        put("Volume.1.Type", "ConfigFileVolume".into());
        put(
            "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Path",
            JITCONFIG_FILE.into(),
        );
        put(
            "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Content",
            base64::engine::general_purpose::STANDARD.encode(request.jit_config.expose()),
        );
        put("Container.1.VolumeMount.1.Name", "jitconfig".into());
        put("Container.1.VolumeMount.1.MountPath", JITCONFIG_DIR.into());
        put("Container.1.VolumeMount.1.ReadOnly", "true".into());

        if let Some(bucket) = &spec.disk_bucket {
            let oss = self.config.oss.as_ref().ok_or_else(|| {
                invalid(format!(
                    "disk-{bucket} needs the `oss` section of the ECI config"
                ))
            })?;
            let options = serde_json::json!({
                "bucket": bucket,
                "url": oss.endpoint,
                "path": "/",
                "ramRole": oss.ram_role,
            });
            put("Volume.2.Name", "work".into());
            put("Volume.2.Type", "FlexVolume".into());
            put("Volume.2.FlexVolume.Driver", "alicloud/oss".into());
            put("Volume.2.FlexVolume.Options", options.to_string());
            put("Container.1.VolumeMount.2.Name", "work".into());
            put("Container.1.VolumeMount.2.MountPath", WORK_DIR.into());
        }
        Ok(p)
    }

    /// Every group of this controller, optionally only those named `name`.
    async fn describe(&self, name: Option<&str>) -> Result<Vec<Group>, EciError> {
        let mut groups = Vec::new();
        let mut next_token = String::new();
        loop {
            let mut p = BTreeMap::new();
            p.insert("RegionId".to_owned(), self.config.region.clone());
            p.insert("Limit".to_owned(), PAGE_LIMIT.to_owned());
            p.insert("Tag.1.Key".to_owned(), tags::CONTROLLER.to_owned());
            p.insert("Tag.1.Value".to_owned(), self.config.controller_id.clone());
            if let Some(name) = name {
                p.insert("ContainerGroupName".to_owned(), name.to_owned());
            }
            if !next_token.is_empty() {
                p.insert("NextToken".to_owned(), next_token.clone());
            }
            let page: DescribeResponse = self.client.call("DescribeContainerGroups", p).await?;
            groups.extend(page.container_groups.into_iter().filter(|g| {
                name.is_none_or(|n| g.container_group_name == n)
                    && g.tags
                        .iter()
                        .any(|t| t.key == tags::CONTROLLER && t.value == self.config.controller_id)
            }));
            if page.next_token.is_empty() {
                return Ok(groups);
            }
            next_token = page.next_token;
        }
    }
}

/// ECI client tokens are at most 64 ASCII characters; longer runner names are hashed.
fn client_token(runner_name: &str) -> String {
    if runner_name.len() <= 64 {
        runner_name.to_owned()
    } else {
        format!("{:x}", sha1::Sha1::digest(runner_name.as_bytes()))
    }
}

fn to_instance(group: Group) -> Instance {
    let tags: BTreeMap<String, String> = group.tags.into_iter().map(|t| (t.key, t.value)).collect();
    let status = match group.status.as_str() {
        "Pending" | "Scheduling" | "Restarting" | "Updating" => InstanceStatus::Pending,
        "Running" => InstanceStatus::Running,
        "Succeeded" | "Failed" | "Expired" | "ScheduleFailed" | "Terminating" => {
            InstanceStatus::Stopped
        }
        _ => InstanceStatus::Unknown,
    };
    Instance {
        id: group.container_group_id,
        runner_name: tags
            .get(tags::RUNNER)
            .cloned()
            .unwrap_or(group.container_group_name),
        status,
        tags,
    }
}

#[async_trait::async_trait]
impl Provider for EciProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::AlibabaEci
    }

    async fn create(&self, request: &CreateRequest) -> Result<Instance, ProviderError> {
        let params = self
            .create_params(request)
            .map_err(|e| e.into_provider("create"))?;
        if let Some(existing) = self.get(&request.runner_name).await? {
            return Ok(existing);
        }
        match self
            .client
            .call::<CreateResponse>("CreateContainerGroup", params)
            .await
        {
            Ok(created) => {
                tracing::info!(runner = %request.runner_name, id = %created.container_group_id, "ECI container group created");
                Ok(Instance {
                    id: created.container_group_id,
                    runner_name: request.runner_name.clone(),
                    status: InstanceStatus::Pending,
                    tags: request.tags(),
                })
            }
            // Same token, different parameters: an earlier attempt (e.g. with another JIT
            // config) created it. That one is the instance.
            Err(e) if e.code() == Some("IdempotentParameterMismatch") => self
                .get(&request.runner_name)
                .await?
                .ok_or_else(|| e.into_provider("create")),
            Err(e) => Err(e.into_provider("create")),
        }
    }

    async fn delete(&self, runner_name: &str) -> Result<(), ProviderError> {
        let groups = self
            .describe(Some(runner_name))
            .await
            .map_err(|e| e.into_provider("delete"))?;
        for group in groups {
            let mut p = BTreeMap::new();
            p.insert("RegionId".to_owned(), self.config.region.clone());
            p.insert(
                "ContainerGroupId".to_owned(),
                group.container_group_id.clone(),
            );
            match self.client.call::<Empty>("DeleteContainerGroup", p).await {
                Ok(_) => {
                    tracing::info!(runner = %runner_name, id = %group.container_group_id, "ECI container group deleted");
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e.into_provider("delete")),
            }
        }
        Ok(())
    }

    async fn get(&self, runner_name: &str) -> Result<Option<Instance>, ProviderError> {
        let groups = self
            .describe(Some(runner_name))
            .await
            .map_err(|e| e.into_provider("get"))?;
        Ok(groups.into_iter().next().map(to_instance))
    }

    async fn list(&self) -> Result<Vec<Instance>, ProviderError> {
        let groups = self
            .describe(None)
            .await
            .map_err(|e| e.into_provider("list"))?;
        Ok(groups.into_iter().map(to_instance).collect())
    }

    fn capabilities(&self) -> Capabilities {
        crate::settings::capabilities(self.config.oss.is_some())
    }
}
