//! The JIT config as a Secret Manager secret, referenced by the job instead of a clear env value.
//!
//! Each runner gets one secret, `{runner name}-jit`, labelled like its job. Creating it twice
//! is fine (the second time only adds a version); deleting a missing one is success. With a
//! `runner_service_account`, the secret's IAM policy grants `secretAccessor` to that account
//! alone, so a runner of another project-wide identity cannot read it.

use std::collections::BTreeMap;

use base64::Engine;
use bus_schema::Secret;
use reqwest::Method;
use serde_json::json;

use crate::client::Api;
use crate::config::GcpConfig;
use crate::error::GcpError;

/// The role that lets an account read a secret's payload.
pub(crate) const ACCESSOR_ROLE: &str = "roles/secretmanager.secretAccessor";

/// The secret id holding `runner_name`'s JIT config.
pub(crate) fn secret_id(runner_name: &str) -> String {
    format!("{runner_name}-jit")
}

/// Stores `value` as a new version of secret `id` (creating the secret when missing) and
/// returns the version's resource name, `projects/{p}/secrets/{id}/versions/{n}`.
pub(crate) async fn put(
    api: &Api,
    config: &GcpConfig,
    id: &str,
    labels: &BTreeMap<String, String>,
    value: &Secret,
) -> Result<String, GcpError> {
    let base = &config.endpoints.secretmanager;
    let project = &config.project;
    let body = json!({ "replication": { "automatic": {} }, "labels": labels });
    let created = api
        .call(
            "create secret",
            Method::POST,
            &format!("{base}/v1/projects/{project}/secrets"),
            &[("secretId", id)],
            Some(&body),
        )
        .await;
    match created {
        Ok(_) => {}
        Err(e) if e.is_already_exists() => {}
        Err(e) => return Err(e),
    }
    // Only the runner's own service account may read this secret.
    if let Some(account) = &config.runner_service_account {
        let policy = json!({ "policy": { "bindings": [{
            "role": ACCESSOR_ROLE,
            "members": [format!("serviceAccount:{account}")],
        }]}});
        api.call(
            "set secret IAM policy",
            Method::POST,
            &format!("{base}/v1/projects/{project}/secrets/{id}:setIamPolicy"),
            &[],
            Some(&policy),
        )
        .await?;
    }
    let data = base64::engine::general_purpose::STANDARD.encode(value.expose());
    let version = api
        .call(
            "add secret version",
            Method::POST,
            &format!("{base}/v1/projects/{project}/secrets/{id}:addVersion"),
            &[],
            Some(&json!({ "payload": { "data": data } })),
        )
        .await?;
    version["name"]
        .as_str()
        .map(str::to_owned)
        .ok_or(GcpError::Decode {
            operation: "add secret version",
            message: "no version name".to_owned(),
        })
}

/// Deletes secret `id` with all its versions. Missing is success.
pub(crate) async fn delete(api: &Api, config: &GcpConfig, id: &str) -> Result<(), GcpError> {
    let url = format!(
        "{}/v1/projects/{}/secrets/{id}",
        config.endpoints.secretmanager, config.project
    );
    match api
        .call("delete secret", Method::DELETE, &url, &[], None)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == bus_schema::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
