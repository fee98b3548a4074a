//! The AWS simulator as the lab drives it: [`CloudSim`] over [`SimHandle`], and [`LAB`], how
//! the lab starts it.
//!
//! Guarantees: [`CloudSim::instances`] lists every task not stopped and every Secrets
//! Manager secret still there (a secret left behind is a leak, as the issue defines it);
//! [`CloudSim::launched`] names runners, not task ids, so two tasks started for one runner
//! show as a duplicate.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bus_schema::ProviderKind;
use providers::tags;
use secrecy::SecretString;
use simulators::cloud::{
    CloudFault, CloudSim, Launch, SimInstanceTags, SimPlugin, StartFuture, StartedSim,
};

use super::{Fault, Sim, SimConfig, SimHandle};

impl CloudSim for SimHandle {
    fn kind(&self) -> ProviderKind {
        ProviderKind::AwsFargate
    }

    fn exited_without_runner(&self) -> usize {
        SimHandle::exited_without_runner(self)
    }

    fn base_url(&self) -> String {
        SimHandle::base_url(self)
    }

    fn provider_config(&self, secret: &str) -> BTreeMap<String, String> {
        let cfg = self.config();
        let mut fields = BTreeMap::from([
            ("endpoint".to_owned(), SimHandle::base_url(self)),
            ("region".to_owned(), cfg.region.clone()),
            ("access_key_id".to_owned(), cfg.access_key_id.clone()),
            ("secret_access_key".to_owned(), secret.to_owned()),
            ("task_role_arn".to_owned(), cfg.task_role_arn.clone()),
            ("task_role_id".to_owned(), cfg.task_role_id.clone()),
        ]);
        if let Some(cluster) = cfg.clusters.first() {
            fields.insert("cluster".to_owned(), cluster.clone());
        }
        fields
    }

    fn provider_config_lists(&self) -> BTreeMap<String, Vec<String>> {
        let cfg = self.config();
        let first = |v: &[String]| v.iter().take(1).cloned().collect::<Vec<_>>();
        BTreeMap::from([
            ("subnets".to_owned(), cfg.subnets.clone()),
            ("security_groups".to_owned(), cfg.security_groups.clone()),
            (
                "default_security_groups".to_owned(),
                first(&cfg.security_groups),
            ),
        ])
    }

    fn instances(&self) -> Vec<SimInstanceTags> {
        let tasks = self.live_tasks().into_iter().map(|t| SimInstanceTags {
            name: t.id,
            tags: t.tags,
        });
        let secrets = self.secrets().into_iter().map(|s| SimInstanceTags {
            name: s.name,
            tags: s.tags,
        });
        tasks.chain(secrets).collect()
    }

    fn controller_tag(&self, controller_id: &str) -> String {
        crate::names::tag_value(controller_id)
    }

    fn launched(&self) -> Vec<String> {
        let tasks = self.tasks();
        SimHandle::launched(self)
            .into_iter()
            .map(|id| {
                tasks
                    .iter()
                    .find(|t| t.id == id)
                    .and_then(|t| t.tags.get(tags::RUNNER).cloned())
                    .unwrap_or(id)
            })
            .collect()
    }

    fn create_orphan(&self, _runner_name: &str, tags: BTreeMap<String, String>) {
        let cluster = self.config().clusters.first().cloned().unwrap_or_default();
        SimHandle::create_orphan(self, &cluster, tags);
    }

    fn inject(&self, fault: CloudFault, count: usize) {
        let fault = match fault {
            CloudFault::Throttle => Fault::Throttle,
            CloudFault::ServerError => Fault::ServerError,
            CloudFault::Slow(d) => Fault::Slow(d),
        };
        SimHandle::inject(self, fault, count);
    }

    fn set_failure_percent(&self, percent: u8, seed: u64) {
        self.set_failure_rate(percent, seed);
    }
}

/// How the lab starts this simulator ([`simulators::cloud::SimPlugin`]).
pub static LAB: SimPlugin = SimPlugin {
    kinds: &[ProviderKind::AwsFargate],
    start: start_for_lab,
};

fn start_for_lab(_kind: ProviderKind, listen: SocketAddr, launch: Launch) -> StartFuture {
    Box::pin(async move {
        let secret = SecretString::from(uuid::Uuid::new_v4().simple().to_string());
        let config = SimConfig {
            secret_access_key: secret.clone(),
            launch: Some(launch),
            ..SimConfig::default()
        };
        let sim = Sim::start(config, listen).await?;
        Ok(StartedSim {
            sim: Box::new(sim),
            secret,
        })
    })
}
