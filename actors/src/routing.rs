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
}
