//! Which tenant and registration a GitHub delivery belongs to.

/// The tenant and registration a job belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub tenant: String,
    pub registration: String,
}

/// Maps a job's repository to its registration. Implemented for the registration config;
/// tests may pass a fixed map.
pub trait Routing: Send + Sync {
    /// `host` is the GitHub web host (`github.com` or a GHES host).
    fn route(
        &self,
        host: &str,
        repo_full_name: &str,
        org: Option<&str>,
        enterprise: Option<&str>,
    ) -> Option<Route>;

    /// Every registration a job goes to: each one whose scope covers the repository and
    /// whose labels admit the job's. When none admits it, the most specific scope match (its
    /// scheduler declines and records why). The default is [`Routing::route`]'s one answer.
    fn routes(
        &self,
        host: &str,
        repo_full_name: &str,
        org: Option<&str>,
        enterprise: Option<&str>,
        _labels: &[String],
    ) -> Vec<Route> {
        self.route(host, repo_full_name, org, enterprise)
            .into_iter()
            .collect()
    }
}

impl Routing for registration::Config {
    fn route(
        &self,
        host: &str,
        repo_full_name: &str,
        org: Option<&str>,
        enterprise: Option<&str>,
    ) -> Option<Route> {
        self.registration_for_job(host, repo_full_name, org, enterprise)
            .map(|reg| Route {
                tenant: reg.tenant.clone(),
                registration: reg.name.clone(),
            })
    }

    fn routes(
        &self,
        host: &str,
        repo_full_name: &str,
        org: Option<&str>,
        enterprise: Option<&str>,
        labels: &[String],
    ) -> Vec<Route> {
        let covering = self.registrations_for_job(host, repo_full_name, org, enterprise);
        let admitted: Vec<_> = (covering.iter())
            .filter(|reg| registration::labels::admit(labels, reg).is_ok())
            .collect();
        let chosen = if admitted.is_empty() {
            covering.first().into_iter().collect()
        } else {
            admitted
        };
        (chosen.into_iter())
            .map(|reg| Route {
                tenant: reg.tenant.clone(),
                registration: reg.name.clone(),
            })
            .collect()
    }
}
