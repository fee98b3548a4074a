//! JetStream message ids (`Nats-Msg-Id`): what each publisher puts there, and why.
//!
//! A stream drops a message whose id it saw within its duplicate window, whatever the
//! subject. Anyone allowed to publish into a stream can therefore suppress a later message
//! by publishing its id first. So:
//! - Every id starts with the tenant it is about.
//! - In the streams a tenant agent may publish into (runner events, reap commands) ids carry
//!   a random nonce: they cannot be guessed, and deduplication is not relied on there (the
//!   consumers are idempotent).
//! - In the streams only the central placement writes (job events, provision commands) ids are
//!   content-derived, so a retried publish is stored once: webhook deliveries deduplicate on
//!   `X-GitHub-Delivery` within one tenant's registration.
//!
//! Ids are header values: the formats below are free-form, not subject tokens.

/// A webhook delivery of one registration: `<tenant>.<registration>.gh.<delivery id>`.
pub fn delivery(tenant: &str, registration: &str, delivery_id: &str) -> String {
    format!("{tenant}.{registration}.gh.{delivery_id}")
}

/// A poller observation of a job in a status: `<tenant>.<registration>.poll.<job id>.<status>`.
pub fn poll(tenant: &str, registration: &str, job_id: u64, status: &str) -> String {
    format!("{tenant}.{registration}.poll.{job_id}.{status}")
}

/// A provision command for one JIT registration of a runner:
/// `<tenant>.provision.<runner>.<github runner id>`.
pub fn provision(tenant: &str, runner: &str, github_runner_id: u64) -> String {
    format!("{tenant}.provision.{runner}.{github_runner_id}")
}

/// A job event the warm pool re-emits when a slot frees:
/// `<tenant>.<registration>.slot.<job id>.<cause>`.
pub fn slot(tenant: &str, registration: &str, job_id: u64, cause: &str) -> String {
    format!("{tenant}.{registration}.slot.{job_id}.{cause}")
}

/// An id no other publisher can guess: `<tenant>.<what>.<runner>.<nonce as 32 hex digits>`.
/// Callers pass a fresh random nonce (this crate does no I/O and draws no randomness).
pub fn unguessable(tenant: &str, what: &str, runner: &str, nonce: u128) -> String {
    format!("{tenant}.{what}.{runner}.{nonce:032x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_lead_with_the_tenant_and_differ_across_tenants() {
        assert_eq!(delivery("a", "reg", "d-1"), "a.reg.gh.d-1");
        assert_ne!(delivery("a", "reg", "d-1"), delivery("b", "reg", "d-1"));
        assert_eq!(poll("a", "reg", 7, "completed"), "a.reg.poll.7.completed");
        assert_eq!(provision("a", "shr-a-1-1", 9), "a.provision.shr-a-1-1.9");
        assert_eq!(slot("a", "reg", 7, "shr-a-1-1"), "a.reg.slot.7.shr-a-1-1");
    }

    #[test]
    fn unguessable_ids_depend_on_the_nonce() {
        let one = unguessable("a", "created", "shr-a-1-1", 1);
        assert_eq!(one, "a.created.shr-a-1-1.00000000000000000000000000000001");
        assert_ne!(one, unguessable("a", "created", "shr-a-1-1", 2));
    }
}
