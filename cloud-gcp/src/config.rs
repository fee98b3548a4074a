//! Configuration shared by the Cloud Run and Batch providers.
//!
//! Every endpoint is overridable so the providers can be pointed at the simulator (`sim` feature). The
//! service-account key is held as a [`SecretString`] and never printed by `Debug`.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

/// Where a provider sends its calls. Defaults are Google's production endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Endpoints {
    /// Cloud Run Admin API v2, e.g. `https://run.googleapis.com`.
    pub run: String,
    /// Batch API v1, e.g. `https://batch.googleapis.com`.
    pub batch: String,
    /// Secret Manager API v1, e.g. `https://secretmanager.googleapis.com`.
    pub secretmanager: String,
    /// The OAuth token endpoint; `None` uses the key's `token_uri`.
    pub token: Option<String>,
}

impl Default for Endpoints {
    fn default() -> Self {
        Self {
            run: "https://run.googleapis.com".to_owned(),
            batch: "https://batch.googleapis.com".to_owned(),
            secretmanager: "https://secretmanager.googleapis.com".to_owned(),
            token: None,
        }
    }
}

impl Endpoints {
    /// Every API and the token endpoint (`{base}/token`) served from one base URL, as the
    /// simulator does.
    pub fn all_at(base: &str) -> Self {
        let base = base.trim_end_matches('/');
        Self {
            run: base.to_owned(),
            batch: base.to_owned(),
            secretmanager: base.to_owned(),
            token: Some(format!("{base}/token")),
        }
    }
}

/// One GCP project and region that hosts runners.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpConfig {
    /// The project id jobs and secrets are created in.
    pub project: String,
    /// The region (`us-central1`, …) jobs run in.
    pub region: String,
    /// This deployment's controller id: put on every job, and the filter for `list`.
    pub controller_id: String,
    /// The service-account key JSON, as downloaded from IAM.
    pub service_account_key: SecretString,
    #[serde(default)]
    pub endpoints: Endpoints,
    /// The VPC network jobs attach to when the runner spec names none (Batch:
    /// `projects/{p}/global/networks/{n}` or a name; Cloud Run: a network name).
    #[serde(default)]
    pub network: Option<String>,
    /// The subnetwork used when `spec.network.subnet` is empty.
    #[serde(default)]
    pub subnetwork: Option<String>,
    /// The service account runners run as (`name@project.iam.gserviceaccount.com`). When set,
    /// each runner's JIT secret is readable by this account alone (per-secret IAM); when
    /// unset, runners run as the project's default compute account.
    #[serde(default)]
    pub runner_service_account: Option<String>,
    /// The runner container's command; `None` runs the official image's `run.sh` (dockerd
    /// first under dind), see [`providers::command`].
    #[serde(default)]
    pub runner_command: Option<Vec<String>>,
    /// How long to wait for a long-running operation before reporting a transient error.
    #[serde(default = "default_operation_timeout_secs")]
    pub operation_timeout_secs: u64,
}

fn default_operation_timeout_secs() -> u64 {
    120
}

impl GcpConfig {
    /// A configuration with Google's endpoints and no network defaults.
    pub fn new(
        project: impl Into<String>,
        region: impl Into<String>,
        service_account_key: SecretString,
        controller_id: impl Into<String>,
    ) -> Self {
        Self {
            project: project.into(),
            region: region.into(),
            controller_id: controller_id.into(),
            service_account_key,
            endpoints: Endpoints::default(),
            network: None,
            subnetwork: None,
            runner_service_account: None,
            runner_command: None,
            operation_timeout_secs: default_operation_timeout_secs(),
        }
    }

    /// `projects/{project}/locations/{region}`.
    pub fn parent(&self) -> String {
        format!("projects/{}/locations/{}", self.project, self.region)
    }

    pub(crate) fn operation_timeout(&self) -> Duration {
        Duration::from_secs(self.operation_timeout_secs)
    }
}
