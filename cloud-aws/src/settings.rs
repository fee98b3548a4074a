//! `[tenants.<t>.providers.aws-fargate]`: the section's shape, its checks, and how it becomes
//! a [`FargateProvider`].
//!
//! Guarantees: every field problem is reported at once, relative to the section; the secret
//! access key and session token are references, resolved only by [`CloudSettings::build`].
//! Without `access_key_id` the provider uses the standard credential chain (environment,
//! container endpoint, IMDSv2).

use std::collections::BTreeMap;
use std::sync::Arc;

use bus_schema::{Capabilities, ProviderKind};
use providers::{BuildError, CloudSettings, Provider, plugin::resolve};
use registration::{FieldError, Fields, ProviderSettings, SecretRef};
use serde::Deserialize;
use url::Url;

use crate::credentials::{ChainEndpoints, CredentialSource, Credentials};
use crate::provider::{HARD_MAX_CPU_MILLIS, HARD_MAX_MEMORY_MIB, RESERVED_ENV};
use crate::{AwsConfig, Capacity, FargateProvider, shapes};

/// The section as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFargateSettings {
    /// One base URL for both ECS and Secrets Manager (a simulator or a proxy).
    pub endpoint: Option<String>,
    /// The Secrets Manager URL the task calls (e.g. a VPC endpoint).
    pub task_secrets_endpoint: Option<String>,
    pub region: String,
    pub cluster: String,
    /// With `secret_access_key`: static keys. Without: the standard credential chain.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub task_role_arn: String,
    pub task_role_id: String,
    pub execution_role_arn: Option<String>,
    pub subnets: Vec<String>,
    #[serde(default)]
    pub security_groups: Vec<String>,
    #[serde(default)]
    pub default_security_groups: Vec<String>,
    #[serde(default)]
    pub assign_public_ip: bool,
    /// `on-demand` (default), `spot` or `spot-with-fallback`.
    pub capacity: Option<String>,
    /// Registration name → capacity, overriding `capacity` for that registration's runners.
    #[serde(default)]
    pub capacity_by_registration: BTreeMap<String, String>,
    pub secret_prefix: Option<String>,
    pub max_cpu_millis: Option<u32>,
    pub max_memory_mib: Option<u32>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub request_timeout_secs: Option<u64>,
}

/// How the provider authenticates.
#[derive(Debug, Clone)]
pub enum FargateCredentials {
    /// An access key whose secret (and optional session token) are references.
    Static {
        access_key_id: String,
        secret_access_key: SecretRef,
        session_token: Option<SecretRef>,
    },
    /// Environment, then the container credentials endpoint, then IMDSv2.
    Chain,
}

/// A tenant's validated Fargate account, region and cluster.
#[derive(Debug, Clone)]
pub struct FargateSettings {
    pub endpoint: Option<Url>,
    pub task_secrets_endpoint: Option<Url>,
    pub region: String,
    pub cluster: String,
    pub credentials: FargateCredentials,
    pub task_role_arn: String,
    pub task_role_id: String,
    pub execution_role_arn: Option<String>,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub default_security_groups: Vec<String>,
    pub assign_public_ip: bool,
    /// The capacity of runners whose registration `capacity_by_registration` does not name.
    pub capacity: Capacity,
    pub capacity_by_registration: BTreeMap<String, Capacity>,
    pub secret_prefix: String,
    pub max_cpu_millis: u32,
    pub max_memory_mib: u32,
    pub env: BTreeMap<String, String>,
    pub request_timeout_secs: u64,
}

/// What Fargate hosts under the given maxima: any size within them (the provider rounds a
/// size up to the smallest Fargate CPU/memory pair that covers it), no dind, no bucket
/// mounts.
pub fn capabilities(max_cpu_millis: u32, max_memory_mib: u32) -> Capabilities {
    Capabilities {
        shapes: Vec::new(),
        max_cpu_millis,
        max_memory_mib,
        dind: false,
        disk_mount: false,
    }
}

/// `^[a-z]{2}(-[a-z]+)+-[0-9]+$`, e.g. `eu-west-1`, `us-gov-west-1`.
fn region_ok(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

/// `prefix` then 1-32 lowercase hex digits (`subnet-0abc`, `sg-12ef`).
fn aws_id(value: &str, prefix: &str) -> Result<(), String> {
    match value.strip_prefix(prefix) {
        Some(rest)
            if (1..=32).contains(&rest.len())
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "`{value}` must be `{prefix}` followed by lowercase hex digits"
        )),
    }
}

fn ids(f: &mut Fields, field: &str, values: &[String], prefix: &str) {
    for (i, v) in values.iter().enumerate() {
        f.check(&format!("{field}[{i}]"), aws_id(v, prefix));
    }
}

fn parse_capacity(value: Option<&str>) -> Result<Capacity, String> {
    match value {
        None | Some("on-demand") => Ok(Capacity::OnDemand),
        Some("spot") => Ok(Capacity::Spot),
        Some("spot-with-fallback") => Ok(Capacity::SpotWithFallback),
        Some(other) => Err(format!(
            "`{other}` is not one of on-demand, spot, spot-with-fallback"
        )),
    }
}

impl ProviderSettings for FargateSettings {
    fn region(&self) -> Option<&str> {
        Some(&self.region)
    }

    fn capabilities(&self) -> Capabilities {
        capabilities(self.max_cpu_millis, self.max_memory_mib)
    }
}

impl CloudSettings for FargateSettings {
    const KIND: ProviderKind = ProviderKind::AwsFargate;
    type Raw = RawFargateSettings;
    const EXAMPLE: &'static str = r#"region = "eu-west-1"
cluster = "shr-runners"
access_key_id = "AKIAIOSFODNN7EXAMPLE"
secret_access_key = "env:AWS_SECRET_ACCESS_KEY"
task_role_arn = "arn:aws:iam::123456789012:role/shr-runner-task"
task_role_id = "AROA3XFRBF535EXAMPLE"
subnets = ["subnet-0a1b2c3d"]
"#;

    fn validate(raw: RawFargateSettings) -> Result<Self, Vec<FieldError>> {
        let mut f = Fields::new();
        f.check(
            "region",
            if region_ok(&raw.region) {
                Ok(())
            } else {
                Err(format!(
                    "`{}` is not an AWS region like eu-west-1",
                    raw.region
                ))
            },
        );
        f.non_empty("cluster", &raw.cluster);
        let endpoint = f.http_url("endpoint", raw.endpoint.as_deref());
        let task_secrets_endpoint = f.http_url(
            "task_secrets_endpoint",
            raw.task_secrets_endpoint.as_deref(),
        );
        let credentials = match (&raw.access_key_id, &raw.secret_access_key) {
            (Some(id), Some(secret)) => {
                f.non_empty("access_key_id", id);
                let secret = f.secret("secret_access_key", secret);
                let token = raw
                    .session_token
                    .as_deref()
                    .map(|t| f.secret("session_token", t));
                match (secret, token) {
                    (Some(secret_access_key), None) => Some(FargateCredentials::Static {
                        access_key_id: id.clone(),
                        secret_access_key,
                        session_token: None,
                    }),
                    (Some(secret_access_key), Some(Some(token))) => {
                        Some(FargateCredentials::Static {
                            access_key_id: id.clone(),
                            secret_access_key,
                            session_token: Some(token),
                        })
                    }
                    _ => None,
                }
            }
            (None, None) => {
                if raw.session_token.is_some() {
                    f.push("session_token", "needs access_key_id and secret_access_key");
                }
                Some(FargateCredentials::Chain)
            }
            (Some(_), None) => {
                f.push("secret_access_key", "access_key_id needs it");
                None
            }
            (None, Some(_)) => {
                f.push("access_key_id", "secret_access_key needs it");
                None
            }
        };
        let role_arn_ok = ["arn:aws:iam::", "arn:aws-cn:iam::", "arn:aws-us-gov:iam::"]
            .iter()
            .any(|p| raw.task_role_arn.starts_with(p))
            && raw.task_role_arn.contains(":role/");
        if !role_arn_ok {
            f.push(
                "task_role_arn",
                "must be an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)",
            );
        }
        if !raw.task_role_id.starts_with("AROA") || raw.task_role_id.len() < 8 {
            f.push(
                "task_role_id",
                "must be the role's unique id (AROA…, from `aws iam get-role`)",
            );
        }
        if raw.subnets.is_empty() {
            f.push(
                "subnets",
                "must name at least one subnet (awsvpc tasks need one)",
            );
        }
        ids(&mut f, "subnets", &raw.subnets, "subnet-");
        ids(&mut f, "security_groups", &raw.security_groups, "sg-");
        for (i, sg) in raw.default_security_groups.iter().enumerate() {
            if !raw.security_groups.contains(sg) {
                f.push(
                    format!("default_security_groups[{i}]"),
                    format!("`{sg}` is not in security_groups"),
                );
            }
        }
        let capacity = f.check("capacity", parse_capacity(raw.capacity.as_deref()));
        let mut capacity_by_registration = BTreeMap::new();
        for (registration, value) in &raw.capacity_by_registration {
            let field = format!("capacity_by_registration.{registration}");
            if let Some(c) = f.check(&field, parse_capacity(Some(value))) {
                capacity_by_registration.insert(registration.clone(), c);
            }
        }
        let max_cpu_millis = raw.max_cpu_millis.unwrap_or(HARD_MAX_CPU_MILLIS);
        if shapes::cpu_units(max_cpu_millis).is_none() {
            f.push(
                "max_cpu_millis",
                "must be a Fargate CPU size: 250, 500, 1000, 2000, 4000, 8000 or 16000",
            );
        }
        // The caps must be a Fargate pair themselves: then every size within them has a
        // covering pair within them.
        let max_memory_mib = raw.max_memory_mib.unwrap_or(HARD_MAX_MEMORY_MIB);
        if let Some(units) = shapes::cpu_units(max_cpu_millis)
            && !shapes::memory_allowed(units, max_memory_mib)
        {
            let choices = shapes::memory_choices(units);
            f.push(
                "max_memory_mib",
                format!(
                    "must be a memory Fargate pairs with {max_cpu_millis} millicpu: {}-{} MiB in steps of {}",
                    choices.first().copied().unwrap_or(0),
                    choices.last().copied().unwrap_or(0),
                    choices.get(1).zip(choices.first()).map_or(0, |(b, a)| b - a),
                ),
            );
        }
        let secret_prefix = raw.secret_prefix.unwrap_or_else(|| "shr-jit/".into());
        if secret_prefix.is_empty()
            || !secret_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b))
        {
            f.push(
                "secret_prefix",
                "must be non-empty and use only letters, digits and /_+=.@-",
            );
        }
        for key in raw.env.keys() {
            if RESERVED_ENV.contains(&key.as_str()) {
                f.push(format!("env.{key}"), "is set by the provider");
            }
        }
        let request_timeout_secs = raw.request_timeout_secs.unwrap_or(30);
        if request_timeout_secs == 0 {
            f.push("request_timeout_secs", "must be greater than zero");
        }
        let settings = credentials
            .zip(capacity)
            .map(|(credentials, capacity)| FargateSettings {
                endpoint,
                task_secrets_endpoint,
                region: raw.region,
                cluster: raw.cluster,
                credentials,
                task_role_arn: raw.task_role_arn,
                task_role_id: raw.task_role_id,
                execution_role_arn: raw.execution_role_arn,
                subnets: raw.subnets,
                security_groups: raw.security_groups,
                default_security_groups: raw.default_security_groups,
                assign_public_ip: raw.assign_public_ip,
                capacity,
                capacity_by_registration,
                secret_prefix,
                max_cpu_millis,
                max_memory_mib,
                env: raw.env,
                request_timeout_secs,
            });
        f.finish(settings)
    }

    fn build(&self, controller_id: &str, _tenant: &str) -> Result<Arc<dyn Provider>, BuildError> {
        let provider = FargateProvider::new(self.config(controller_id)?)
            .map_err(|e| BuildError::configure("configuring", e))?;
        Ok(Arc::new(provider))
    }
}

impl FargateSettings {
    /// The provider's configuration, with the credentials resolved.
    pub fn config(&self, controller_id: &str) -> Result<AwsConfig, BuildError> {
        let credentials = match &self.credentials {
            FargateCredentials::Static {
                access_key_id,
                secret_access_key,
                session_token,
            } => CredentialSource::Static(Credentials {
                access_key_id: access_key_id.clone(),
                secret_access_key: resolve("secret_access_key", secret_access_key)?,
                session_token: session_token
                    .as_ref()
                    .map(|t| resolve("session_token", t))
                    .transpose()?,
                expires: None,
            }),
            FargateCredentials::Chain => CredentialSource::Chain(ChainEndpoints::default()),
        };
        let mut config = AwsConfig::new(
            &self.region,
            credentials,
            &self.cluster,
            controller_id,
            &self.task_role_arn,
            &self.task_role_id,
            self.subnets.clone(),
        );
        if let Some(endpoint) = &self.endpoint {
            config = config.with_endpoint(endpoint.as_str());
        }
        config.task_secrets_endpoint = self
            .task_secrets_endpoint
            .as_ref()
            .map(|u| u.as_str().trim_end_matches('/').to_owned());
        config
            .execution_role_arn
            .clone_from(&self.execution_role_arn);
        config.security_groups.clone_from(&self.security_groups);
        config
            .default_security_groups
            .clone_from(&self.default_security_groups);
        config.assign_public_ip = self.assign_public_ip;
        config.capacity = self.capacity;
        config
            .capacity_by_registration
            .clone_from(&self.capacity_by_registration);
        config.secret_prefix.clone_from(&self.secret_prefix);
        config.max_cpu_millis = self.max_cpu_millis;
        config.max_memory_mib = self.max_memory_mib;
        config.env.clone_from(&self.env);
        config.request_timeout_secs = self.request_timeout_secs;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn regions_and_ids() {
        for ok in ["eu-west-1", "us-gov-west-1", "ap-southeast-2"] {
            assert!(region_ok(ok), "{ok}");
        }
        for bad in ["", "eu", "eu-west", "EU-west-1", "eu-west-1a", "e-west-1"] {
            assert!(!region_ok(bad), "{bad}");
        }
        assert!(aws_id("subnet-0a1b", "subnet-").is_ok());
        assert!(aws_id("subnet-", "subnet-").is_err());
        assert!(aws_id("subnet-XYZ", "subnet-").is_err());
        assert!(aws_id("sg-0a1b", "subnet-").is_err());
    }
}
