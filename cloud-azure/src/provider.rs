//! [`AciProvider`]: runners as Azure container groups, over ARM REST.
//!
//! - create: GET the group named after the runner; if absent, PUT it. PUT by name is ARM's
//!   idempotency key, so a racing second create updates the same group instead of adding one.
//!   The GET first avoids re-PUTting a running group, which ACI may treat as an update.
//! - delete: GET, then DELETE only a group carrying our controller tag; 200/202/204 and 404
//!   are success, and so is a group of another controller, which is left alone.
//! - get and list: only groups carrying our controller tag (another deployment may share the
//!   resource group).
//! - list items carry no `instanceView`; each provisioned group is read with a GET for its
//!   run state, so finished groups show as stopped.
//! - The JIT config travels only as the container's `secureValue` env var, which ARM never
//!   returns on GET; nothing here logs a request body.
//! - The container command starts `/home/runner/run.sh` (the official image has no
//!   ENTRYPOINT or CMD); under dind the container is privileged and dockerd starts first.

use std::time::Duration;

use async_trait::async_trait;
use bus_schema::ProviderKind;
use providers::{Capabilities, CreateRequest, Instance, InstanceStatus, Provider, ProviderError};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::config::AciConfig;
use crate::error::{AciError, service_error};
use crate::limits;
use crate::token::TokenClient;

/// The env var the runner reads its JIT config from.
pub const JIT_ENV: &str = "ACTIONS_RUNNER_INPUT_JITCONFIG";
/// The runner container's name inside its group.
pub const CONTAINER_NAME: &str = "runner";
/// Hard per-group ceilings of the standard SKU ("Resource availability & quota limits").
const HARD_MAX_CPU_MILLIS: u32 = 31_000;
const HARD_MAX_MEMORY_MIB: u32 = 240 * 1024;

/// Hosts runners on Azure Container Instances.
#[derive(Debug)]
pub struct AciProvider {
    cfg: AciConfig,
    http: reqwest::Client,
    tokens: TokenClient,
    /// `{arm}/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerInstance/containerGroups`
    groups_url: String,
}

struct Response {
    status: u16,
    body: String,
}

impl AciProvider {
    /// Checks the configuration and builds the HTTP client. No network call is made.
    pub fn new(cfg: AciConfig) -> Result<Self, ProviderError> {
        Self::build(cfg).map_err(ProviderError::from)
    }

    fn build(mut cfg: AciConfig) -> Result<Self, AciError> {
        for (field, value) in [
            ("tenant_id", &cfg.tenant_id),
            ("client_id", &cfg.client_id),
            ("subscription_id", &cfg.subscription_id),
            ("resource_group", &cfg.resource_group),
            ("location", &cfg.location),
            ("controller_id", &cfg.controller_id),
        ] {
            if value.trim().is_empty() {
                return Err(AciError::Config(format!("{field} is empty")));
            }
        }
        for (field, value) in [
            ("arm_endpoint", &cfg.arm_endpoint),
            ("login_endpoint", &cfg.login_endpoint),
        ] {
            url::Url::parse(value).map_err(|e| AciError::Config(format!("{field}: {e}")))?;
        }
        cfg.arm_endpoint = cfg.arm_endpoint.trim_end_matches('/').to_owned();
        if cfg.max_cpu_millis > HARD_MAX_CPU_MILLIS || cfg.max_memory_mib > HARD_MAX_MEMORY_MIB {
            return Err(AciError::Config(format!(
                "max_cpu_millis/max_memory_mib above ACI's per-group ceiling of {HARD_MAX_CPU_MILLIS} / {HARD_MAX_MEMORY_MIB}"
            )));
        }
        if cfg.env.contains_key(JIT_ENV) {
            return Err(AciError::Config(format!("env must not set {JIT_ENV}")));
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.request_timeout_secs))
            .build()
            .map_err(|e| AciError::Config(format!("HTTP client: {e}")))?;
        let tokens = TokenClient::new(
            http.clone(),
            &cfg.login_endpoint,
            &cfg.tenant_id,
            &cfg.client_id,
            cfg.client_secret.clone(),
            &cfg.scope,
        );
        let groups_url = format!(
            "{}/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ContainerInstance/containerGroups",
            cfg.arm_endpoint, cfg.subscription_id, cfg.resource_group
        );
        Ok(Self {
            cfg,
            http,
            tokens,
            groups_url,
        })
    }

    /// Whether `group` carries this deployment's controller tag.
    fn ours(&self, group: &Value) -> bool {
        group["tags"][providers::tags::CONTROLLER].as_str() == Some(self.cfg.controller_id.as_str())
    }

    /// The group named after `runner_name`, whoever owns it; `None` when absent.
    async fn fetch(
        &self,
        op: &'static str,
        runner_name: &str,
    ) -> Result<Option<Value>, ProviderError> {
        let url = self.group_url(&limits::group_name(runner_name));
        let resp = self.call(op, Method::GET, &url, None).await?;
        if resp.status == 404 {
            // A missing resource group is a configuration error, not a missing runner.
            let err = Self::not_found_error(op, &resp);
            return match &err {
                AciError::Service { code, .. } if code == "ResourceGroupNotFound" => {
                    Err(err.into())
                }
                _ => Ok(None),
            };
        }
        Ok(Some(Self::parse(op, &resp.body)?))
    }

    fn group_url(&self, name: &str) -> String {
        format!(
            "{}/{name}?api-version={}",
            self.groups_url, self.cfg.api_version
        )
    }

    /// One authenticated ARM call. A token ARM rejects is dropped and the call made once more.
    async fn call(
        &self,
        operation: &'static str,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Response, AciError> {
        let mut retried = false;
        loop {
            let token = self.tokens.token().await?;
            let mut req = self
                .http
                .request(method.clone(), url)
                .bearer_auth(token.expose_secret());
            if let Some(body) = body {
                req = req.json(body);
            }
            let resp = req
                .send()
                .await
                .map_err(|source| AciError::Http { operation, source })?;
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let text = resp
                .text()
                .await
                .map_err(|source| AciError::Http { operation, source })?;
            if (200..300).contains(&status) || status == 404 {
                return Ok(Response { status, body: text });
            }
            let mut err = service_error(operation, status, &text);
            if let (Some(after), AciError::Service { message, .. }) = (&retry_after, &mut err) {
                message.push_str(&format!(" (Retry-After: {after})"));
            }
            if let AciError::Service { code, .. } = &err
                && status == 401
                && !retried
                && matches!(
                    code.as_str(),
                    "InvalidAuthenticationToken" | "ExpiredAuthenticationToken"
                )
            {
                self.tokens.invalidate().await;
                retried = true;
                continue;
            }
            return Err(err);
        }
    }

    /// The instance a list item describes. ARM list items carry no `instanceView`, so a
    /// provisioned group's run state is unknown from the list alone: such a group is read
    /// with a GET (which has it). A group gone between list and GET is stopped.
    async fn listed_instance(&self, group: &Value) -> Result<Instance, ProviderError> {
        let provisioned = group["properties"]["provisioningState"].as_str() == Some("Succeeded");
        let has_view = group["properties"]["instanceView"]["state"].is_string();
        if !provisioned || has_view {
            return Ok(instance(group));
        }
        let name = group["name"].as_str().unwrap_or_default();
        let url = self.group_url(name);
        let resp = self.call("list", Method::GET, &url, None).await?;
        if resp.status == 404 {
            let mut gone = instance(group);
            gone.status = InstanceStatus::Stopped;
            return Ok(gone);
        }
        Ok(instance(&Self::parse("list", &resp.body)?))
    }

    fn parse(operation: &'static str, body: &str) -> Result<Value, AciError> {
        serde_json::from_str(body).map_err(|source| AciError::Decode { operation, source })
    }

    fn not_found_error(operation: &'static str, resp: &Response) -> AciError {
        service_error(operation, resp.status, &resp.body)
    }

    /// The container group body for a request. Never log it: it holds the JIT config.
    fn body(&self, req: &CreateRequest) -> Result<Value, AciError> {
        let spec = &req.spec;
        let caps = self.capabilities();
        if !caps.allows(spec.cpu_millis, spec.memory_mib) {
            return Err(AciError::Spec(format!(
                "{} millicpu / {} MiB is above the {} / {} this subscription allows",
                spec.cpu_millis, spec.memory_mib, caps.max_cpu_millis, caps.max_memory_mib
            )));
        }
        let cpu = limits::cpu_cores(spec.cpu_millis).ok_or_else(|| {
            AciError::Spec(format!(
                "cpu {} millis is not a multiple of 0.1 vCPU",
                spec.cpu_millis
            ))
        })?;
        let memory = limits::memory_gb(spec.memory_mib).ok_or_else(|| {
            AciError::Spec(format!(
                "memory {} MiB is not a multiple of 0.1 GB",
                spec.memory_mib
            ))
        })?;
        if spec.dind && !self.cfg.allow_dind {
            return Err(AciError::Spec(
                "docker-in-docker is disabled for this provider".into(),
            ));
        }
        if spec.image.trim().is_empty() {
            return Err(AciError::Spec("image is empty".into()));
        }

        let mut env = vec![json!({"name": JIT_ENV, "secureValue": req.jit_config.expose()})];
        env.extend(
            self.cfg
                .env
                .iter()
                .map(|(k, v)| json!({"name": k, "value": v})),
        );
        let command = providers::command::runner_command(
            self.cfg.runner_command.as_deref(),
            providers::command::JitFrom::Env,
            spec.dind,
        );
        let mut container = json!({
            "image": spec.image,
            "command": command,
            "resources": {"requests": {"cpu": cpu, "memoryInGB": memory}},
            "environmentVariables": env,
        });
        let mut props = json!({
            "osType": "Linux",
            "restartPolicy": "Never",
            "sku": if spec.dind { "Confidential" } else { "Standard" },
        });
        if spec.dind {
            container["securityContext"] = json!({"privileged": true});
        }
        if !self.cfg.registry_credentials.is_empty() {
            props["imageRegistryCredentials"] = self
                .cfg
                .registry_credentials
                .iter()
                .map(|c| {
                    json!({
                        "server": c.server,
                        "username": c.username,
                        "password": c.password.expose_secret(),
                    })
                })
                .collect();
        }
        if let Some(bucket) = &spec.disk_bucket {
            let files = self.cfg.azure_files.as_ref().ok_or_else(|| {
                AciError::Spec("disk-<bucket> needs azure_files in the provider config".into())
            })?;
            if bucket.len() < 3 || !limits::valid_name(bucket) {
                return Err(AciError::Spec(format!(
                    "{bucket:?} is not a valid Azure Files share name"
                )));
            }
            props["volumes"] = json!([{
                "name": "disk",
                "azureFile": {
                    "shareName": bucket,
                    "storageAccountName": files.account_name,
                    "storageAccountKey": files.account_key.expose_secret(),
                },
            }]);
            container["volumeMounts"] = json!([{"name": "disk", "mountPath": files.mount_path}]);
        }
        if let Some(subnet) = spec
            .network
            .subnet
            .as_ref()
            .or(self.cfg.default_subnet.as_ref())
        {
            let id = if subnet.starts_with("/subscriptions/") {
                subnet.clone()
            } else {
                let vnet = self.cfg.vnet_id.as_ref().ok_or_else(|| {
                    AciError::Spec(format!(
                        "subnet {subnet:?} needs vnet_id in the provider config"
                    ))
                })?;
                format!("{}/subnets/{subnet}", vnet.trim_end_matches('/'))
            };
            props["subnetIds"] = json!([{"id": id}]);
        }
        props["containers"] = json!([{"name": CONTAINER_NAME, "properties": container}]);

        let tags: serde_json::Map<String, Value> = req
            .tags()
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    Value::String(v.chars().take(limits::MAX_TAG_VALUE_CHARS).collect()),
                )
            })
            .collect();
        Ok(json!({"location": self.cfg.location, "tags": tags, "properties": props}))
    }
}

/// The instance a container group JSON describes.
fn instance(group: &Value) -> Instance {
    let tags: std::collections::BTreeMap<String, String> = group["tags"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let name = group["name"].as_str().unwrap_or_default();
    Instance {
        id: group["id"].as_str().unwrap_or(name).to_owned(),
        runner_name: tags
            .get(providers::tags::RUNNER)
            .cloned()
            .unwrap_or_else(|| name.to_owned()),
        status: status(&group["properties"]),
        tags,
    }
}

/// Maps `provisioningState` and `instanceView.state` to an [`InstanceStatus`].
fn status(props: &Value) -> InstanceStatus {
    match props["provisioningState"].as_str() {
        Some("Succeeded") => match props["instanceView"]["state"].as_str() {
            Some("Running") => InstanceStatus::Running,
            Some("Succeeded" | "Failed" | "Stopped" | "Terminated") => InstanceStatus::Stopped,
            Some("Pending") | None => InstanceStatus::Pending,
            Some(_) => InstanceStatus::Unknown,
        },
        Some("Failed" | "Canceled" | "Deleting") => InstanceStatus::Stopped,
        Some(_) => InstanceStatus::Pending,
        None => InstanceStatus::Unknown,
    }
}

#[async_trait]
impl Provider for AciProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::AzureAci
    }

    async fn create(&self, request: &CreateRequest) -> Result<Instance, ProviderError> {
        const OP: &str = "create";
        match self.fetch(OP, &request.runner_name).await? {
            Some(group) if self.ours(&group) => return Ok(instance(&group)),
            // Same name, another deployment's group: never PUT over it.
            Some(_) => {
                return Err(AciError::Service {
                    operation: OP,
                    status: 409,
                    code: "ForeignContainerGroup".into(),
                    message: format!(
                        "a container group named after {} belongs to another controller",
                        request.runner_name
                    ),
                }
                .into());
            }
            None => {}
        }
        let body = self.body(request)?;
        let url = self.group_url(&limits::group_name(&request.runner_name));
        let resp = self.call(OP, Method::PUT, &url, Some(&body)).await?;
        if resp.status == 404 {
            return Err(Self::not_found_error(OP, &resp).into());
        }
        let group = Self::parse(OP, &resp.body)?;
        let instance = instance(&group);
        tracing::info!(runner = %request.runner_name, id = %instance.id, status = resp.status, "container group put");
        Ok(instance)
    }

    async fn delete(&self, runner_name: &str) -> Result<(), ProviderError> {
        // Only a group carrying our controller tag is ours to delete: another deployment may
        // share the resource group. Missing (or foreign) is success.
        if !self
            .fetch("delete", runner_name)
            .await?
            .is_some_and(|g| self.ours(&g))
        {
            return Ok(());
        }
        let url = self.group_url(&limits::group_name(runner_name));
        let resp = self.call("delete", Method::DELETE, &url, None).await?;
        tracing::info!(runner = %runner_name, status = resp.status, "container group delete");
        Ok(())
    }

    async fn get(&self, runner_name: &str) -> Result<Option<Instance>, ProviderError> {
        Ok(self
            .fetch("get", runner_name)
            .await?
            .filter(|g| self.ours(g))
            .map(|g| instance(&g)))
    }

    async fn list(&self) -> Result<Vec<Instance>, ProviderError> {
        const OP: &str = "list";
        let mut url = format!("{}?api-version={}", self.groups_url, self.cfg.api_version);
        let mut out = Vec::new();
        loop {
            let resp = self.call(OP, Method::GET, &url, None).await?;
            if resp.status == 404 {
                return Err(Self::not_found_error(OP, &resp).into());
            }
            let page = Self::parse(OP, &resp.body)?;
            let ours = page["value"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|g| self.ours(g));
            for group in ours {
                out.push(self.listed_instance(group).await?);
            }
            match page["nextLink"].as_str().filter(|l| !l.is_empty()) {
                // The bearer token goes only to our own ARM endpoint.
                Some(next) if next.starts_with(&format!("{}/", self.cfg.arm_endpoint)) => {
                    next.clone_into(&mut url);
                }
                Some(next) => {
                    return Err(AciError::Service {
                        operation: OP,
                        status: resp.status,
                        code: "UnexpectedNextLink".into(),
                        message: format!("nextLink outside {}: {next}", self.cfg.arm_endpoint),
                    }
                    .into());
                }
                None => return Ok(out),
            }
        }
    }

    fn capabilities(&self) -> Capabilities {
        crate::settings::capabilities(
            self.cfg.max_cpu_millis,
            self.cfg.max_memory_mib,
            self.cfg.allow_dind,
            self.cfg.azure_files.is_some(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_mapping() {
        let s = |p: Value| status(&p);
        assert_eq!(
            s(json!({"provisioningState": "Creating"})),
            InstanceStatus::Pending
        );
        assert_eq!(
            s(json!({"provisioningState": "Failed"})),
            InstanceStatus::Stopped
        );
        assert_eq!(
            s(json!({"provisioningState": "Succeeded", "instanceView": {"state": "Running"}})),
            InstanceStatus::Running
        );
        assert_eq!(
            s(json!({"provisioningState": "Succeeded", "instanceView": {"state": "Succeeded"}})),
            InstanceStatus::Stopped
        );
        assert_eq!(s(json!({})), InstanceStatus::Unknown);
    }
}
