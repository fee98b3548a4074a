//! Signed `workflow_job` webhook delivery, with retries, a switch, duplicates and a log.
//!
//! Guarantees: deliveries go out one at a time in event order; each carries `X-GitHub-Event`,
//! a fresh `X-GitHub-Delivery` GUID (reused by retries and by the duplicate copy),
//! `X-GitHub-Hook-ID` and `X-Hub-Signature-256` (`sha256=` + hex HMAC-SHA256 of the raw body).
//! A delivery is retried on a non-2xx answer or a connection error, up to [`MAX_ATTEMPTS`].
//! Whether an event is delivered at all is decided when it happens (the enabled switch).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::mpsc;

/// How many times one delivery is attempted.
pub const MAX_ATTEMPTS: u32 = 4;

/// Where webhooks go.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    /// The receiver's URL.
    pub url: String,
    /// The shared secret the body is signed with.
    pub secret: SecretString,
}

/// How a delivery went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting in the queue or being attempted.
    Pending,
    /// A 2xx answer.
    Delivered,
    /// Every attempt failed.
    Failed,
    /// Not sent: webhooks were off or no target was set.
    Skipped,
}

/// One entry of the delivery log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub delivery_id: String,
    pub event: String,
    pub action: String,
    pub job_id: u64,
    pub status: DeliveryStatus,
    pub attempts: u32,
    /// The last HTTP status received, if any.
    pub response_status: Option<u16>,
    /// The payload as sent.
    pub payload: serde_json::Value,
}

#[derive(Debug)]
struct Settings {
    target: Option<WebhookTarget>,
    enabled: bool,
    deliver_twice: bool,
}

/// The delivery side: settings, the log and the queue of the delivery task.
#[derive(Debug)]
pub(crate) struct Webhooks {
    hook_id: u64,
    settings: Mutex<Settings>,
    log: Mutex<Vec<Delivery>>,
    queue: mpsc::UnboundedSender<usize>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Webhooks {
    /// Creates the delivery side and the receiving end its task drains.
    pub(crate) fn new(
        target: Option<WebhookTarget>,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<usize>) {
        let (queue, rx) = mpsc::unbounded_channel();
        let hooks = Webhooks {
            hook_id: 424_242,
            settings: Mutex::new(Settings {
                target,
                enabled: true,
                deliver_twice: false,
            }),
            log: Mutex::new(Vec::new()),
            queue,
        };
        (Arc::new(hooks), rx)
    }

    /// Changes the switch, the duplicate mode, the target URL or secret; `None` keeps a setting
    /// (a new URL without a secret keeps the old secret, or signs with an empty one).
    pub(crate) fn configure(
        &self,
        enabled: Option<bool>,
        deliver_twice: Option<bool>,
        url: Option<String>,
        secret: Option<SecretString>,
    ) {
        let mut settings = lock(&self.settings);
        let target = match (url, secret, settings.target.take()) {
            (Some(url), Some(secret), _) => Some(WebhookTarget { url, secret }),
            (Some(url), None, old) => Some(WebhookTarget {
                url,
                secret: old.map_or_else(|| SecretString::from(""), |t| t.secret),
            }),
            (None, Some(secret), Some(old)) => Some(WebhookTarget {
                url: old.url,
                secret,
            }),
            (None, _, old) => old,
        };
        if let Some(enabled) = enabled {
            settings.enabled = enabled;
        }
        if let Some(twice) = deliver_twice {
            settings.deliver_twice = twice;
        }
        settings.target = target;
    }

    pub(crate) fn log(&self) -> Vec<Delivery> {
        lock(&self.log).clone()
    }

    /// Records an event and queues its delivery (or records it as skipped).
    pub(crate) fn emit(&self, event: &str, action: &str, job_id: u64, payload: serde_json::Value) {
        let send = {
            let settings = lock(&self.settings);
            settings.enabled && settings.target.is_some()
        };
        let mut log = lock(&self.log);
        log.push(Delivery {
            delivery_id: uuid::Uuid::new_v4().to_string(),
            event: event.to_owned(),
            action: action.to_owned(),
            job_id,
            status: if send {
                DeliveryStatus::Pending
            } else {
                DeliveryStatus::Skipped
            },
            attempts: 0,
            response_status: None,
            payload,
        });
        if send && self.queue.send(log.len() - 1).is_err() {
            tracing::warn!("webhook delivery task is gone");
        }
    }

    /// Delivers queued entries in order until the queue closes.
    pub(crate) async fn run(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<usize>) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = match reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
        {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(error = %error, "cannot build the webhook client");
                return;
            }
        };
        while let Some(index) = rx.recv().await {
            self.deliver(&client, index).await;
        }
    }

    async fn deliver(&self, client: &reqwest::Client, index: usize) {
        let Some(entry) = lock(&self.log).get(index).cloned() else {
            return;
        };
        let (target, twice) = {
            let settings = lock(&self.settings);
            (settings.target.clone(), settings.deliver_twice)
        };
        let Some(target) = target else {
            self.update(index, DeliveryStatus::Skipped, 0, None);
            return;
        };
        let body = entry.payload.to_string();
        let signature = sign(target.secret.expose_secret(), body.as_bytes());
        let mut attempts = 0;
        let mut last = None;
        let mut status = DeliveryStatus::Failed;
        for copy in 0..if twice { 2 } else { 1 } {
            status = DeliveryStatus::Failed;
            for attempt in 0..MAX_ATTEMPTS {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
                attempts += 1;
                let sent = client
                    .post(&target.url)
                    .header("content-type", "application/json")
                    .header("user-agent", "GitHub-Hookshot/sim")
                    .header("x-github-event", &entry.event)
                    .header("x-github-delivery", &entry.delivery_id)
                    .header("x-github-hook-id", self.hook_id.to_string())
                    .header("x-github-hook-installation-target-type", "organization")
                    .header("x-hub-signature-256", &signature)
                    .body(body.clone())
                    .send()
                    .await;
                match sent {
                    Ok(response) => {
                        last = Some(response.status().as_u16());
                        if response.status().is_success() {
                            status = DeliveryStatus::Delivered;
                            break;
                        }
                    }
                    Err(error) => {
                        tracing::debug!(error = %error, copy, "webhook delivery attempt failed");
                    }
                }
            }
        }
        self.update(index, status, attempts, last);
    }

    fn update(&self, index: usize, status: DeliveryStatus, attempts: u32, response: Option<u16>) {
        if let Some(entry) = lock(&self.log).get_mut(index) {
            entry.status = status;
            entry.attempts = attempts;
            entry.response_status = response;
        }
    }
}

/// `sha256=` + hex HMAC-SHA256 of `body` keyed with `secret`, as in `X-Hub-Signature-256`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_githubs_documented_example() {
        // From GitHub's "Validating webhook deliveries" docs.
        assert_eq!(
            sign("It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }
}
