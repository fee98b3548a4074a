//! `[tenants.<t>.providers.local]`: runners as child processes of the provisioner.
//!
//! The settings are parsed by the registry like every cloud's, but the local provider is
//! built by the process wiring: its program and state directory are process options, not
//! configuration.

use std::path::PathBuf;
use std::sync::Arc;

use bus_schema::{Capabilities, ProviderKind};
use registration::{FieldError, ProviderSettings};
use serde::Deserialize;

use crate::{BuildError, CloudSettings, Provider};

/// The `local` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSettings {
    /// A real actions/runner `run.sh`; when absent the process's own runner program runs.
    pub runner_command: Option<PathBuf>,
}

/// What a child process on this host can be: any size the host has, no dind, no mounts.
pub fn capabilities() -> Capabilities {
    Capabilities {
        shapes: Vec::new(),
        max_cpu_millis: 64_000,
        max_memory_mib: 256 * 1024,
        dind: false,
        disk_mount: false,
    }
}

impl ProviderSettings for LocalSettings {
    fn region(&self) -> Option<&str> {
        None
    }

    fn capabilities(&self) -> Capabilities {
        capabilities()
    }
}

impl CloudSettings for LocalSettings {
    const KIND: ProviderKind = ProviderKind::Local;
    type Raw = LocalSettings;
    const EXAMPLE: &'static str = "runner_command = \"/opt/actions-runner/run.sh\"\n";

    fn validate(raw: LocalSettings) -> Result<Self, Vec<FieldError>> {
        match &raw.runner_command {
            Some(path) if path.as_os_str().is_empty() => {
                Err(vec![FieldError::new("runner_command", "must not be empty")])
            }
            _ => Ok(raw),
        }
    }

    fn build(&self, _: &str, _: &str) -> Result<Arc<dyn Provider>, BuildError> {
        Err(BuildError::Unsupported(
            "the local provider is built by the process wiring, which knows its runner program and work directory",
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::{CloudPlugin, Plugin};

    fn parse(text: &str) -> Result<Arc<dyn ProviderSettings>, Vec<FieldError>> {
        Plugin::<LocalSettings>::NEW.parse(text.parse::<toml::Table>().unwrap())
    }

    #[test]
    fn local_section_parses_and_rejects_unknown_fields() {
        let settings = parse("runner_command = \"/opt/runner/run.sh\"").unwrap();
        let any: &dyn std::any::Any = &*settings;
        assert_eq!(
            any.downcast_ref::<LocalSettings>().unwrap().runner_command,
            Some(PathBuf::from("/opt/runner/run.sh"))
        );
        assert!(parse("").is_ok());
        let errors = parse("runner_comand = \"x\"").unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].reason.contains("unknown field `runner_comand`"),
            "{errors:?}"
        );
        let errors = parse("runner_command = \"\"").unwrap_err();
        assert_eq!(errors[0].field, "runner_command");
        let errors = parse("runner_command = 5").unwrap_err();
        assert_eq!(errors[0].field, "runner_command", "{errors:?}");
    }

    #[test]
    fn local_plugin_refuses_to_build_without_the_wiring() {
        let settings = parse("").unwrap();
        let error = Plugin::<LocalSettings>::NEW
            .build(&*settings, "shr", "acme")
            .unwrap_err();
        assert!(matches!(error, BuildError::Unsupported(_)), "{error}");
    }
}
