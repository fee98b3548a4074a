//! Connecting to NATS and setting up the bus: the four streams and three KV buckets named in
//! [`bus_schema::subject`].
//!
//! [`ensure_bus`] is create-or-update and safe to run from many processes at once: a create
//! that loses the race to another process turns into an update on the next attempt.

use std::time::Duration;

use async_nats::{
    HeaderMap, HeaderValue,
    header::NATS_MESSAGE_ID,
    jetstream::{
        self, Context,
        context::CreateStreamErrorKind,
        kv,
        publish::PublishAck,
        stream::{Config as StreamConfig, RetentionPolicy, StorageType},
    },
};
use bus_schema::subject;
use secrecy::{ExposeSecret, SecretString};

use crate::{Error, LEASE_TTL};

/// JetStream's duplicate window on every stream: a message id seen within it is dropped.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// How long events and commands stay in their streams.
pub const EVENT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Revisions kept per key in the record buckets (the latest plus a little audit trail).
pub const RECORD_HISTORY: i64 = 5;

/// Job and runner records untouched this long expire. GitHub cancels a job queued for a
/// day, and a runner lives at most its max runtime; an instance whose record expired anyway is
/// found by the reaper's orphan sweep. Without an expiry, declined and deleted records of a
/// busy org would pile up forever.
pub const RECORD_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// How often a create-or-update is attempted before giving up on a race.
const ENSURE_ATTEMPTS: u32 = 5;

/// Connects as `shr` with default reconnect behaviour; see [`connect_named`].
pub async fn connect(url: &str) -> Result<async_nats::Client, Error> {
    connect_named(url, "shr").await
}

/// How a process proves who it is to NATS, and where its replies go.
///
/// Credentials never travel in the URL (see [`redact_url`]); `Debug` shows which kind is set,
/// never the secret.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// An nkey user seed (`SU…`): the server knows the public key.
    pub nkey_seed: Option<SecretString>,
    /// The contents of a `.creds` file (user JWT and seed), for operator/JWT deployments.
    pub creds: Option<SecretString>,
    /// The inbox prefix of this identity (`_INBOX_<tenant>` for a tenant agent): replies,
    /// JetStream acks and pulled messages arrive below it, and its grant allows no other
    /// inbox. `None` keeps the client's default `_INBOX`.
    pub inbox_prefix: Option<String>,
}

/// Connects with a connection name (shown in server monitoring) and no credentials; see
/// [`connect_as`].
pub async fn connect_named(url: &str, name: &str) -> Result<async_nats::Client, Error> {
    connect_as(url, name, &Identity::default()).await
}

/// `url` with any user information (`user:password@`) replaced by `***@`, for logs, errors
/// and summaries.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let redacted = match rest[..host_end].rfind('@') {
        Some(at) => format!("***@{}", &rest[at + 1..]),
        None => rest.to_owned(),
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{redacted}"),
        None => redacted,
    }
}

/// Connects as `identity`. The first connect must succeed; after that the client reconnects
/// forever with backoff, buffering publishes, and logs connection events. Errors and logs
/// show the URL without user information.
pub async fn connect_as(
    url: &str,
    name: &str,
    identity: &Identity,
) -> Result<async_nats::Client, Error> {
    let shown = redact_url(url);
    let mut options = async_nats::ConnectOptions::new();
    if let Some(seed) = &identity.nkey_seed {
        options = options.nkey(seed.expose_secret().to_owned());
    }
    if let Some(creds) = &identity.creds {
        options = options
            .credentials(creds.expose_secret())
            .map_err(|source| Error::Credentials { source })?;
    }
    if let Some(prefix) = &identity.inbox_prefix {
        options = options.custom_inbox_prefix(prefix);
    }
    options
        .name(name)
        .connection_timeout(Duration::from_secs(5))
        .request_timeout(Some(Duration::from_secs(10)))
        .max_reconnects(None)
        .event_callback(|event| async move {
            use async_nats::Event;
            match event {
                // A reconnect follows by itself, and `/readyz` reports the outage while it
                // lasts; a server going away for maintenance (lame duck) is the same story.
                Event::Connected | Event::Disconnected | Event::LameDuckMode => {
                    tracing::info!("nats: {event}");
                }
                Event::Draining | Event::Closed => tracing::debug!("nats: {event}"),
                // Faults an operator acts on: a consumer too slow for its subscription, a
                // permission or protocol error from the server or the client.
                Event::SlowConsumer(_) | Event::ServerError(_) | Event::ClientError(_) => {
                    tracing::warn!("nats: {event}");
                }
            }
        })
        .connect(url)
        .await
        .map_err(|source| Error::Connect { url: shown, source })
}

/// Tunables of [`ensure_bus_with`].
#[derive(Debug, Clone)]
pub struct BusOptions {
    /// Replicas of every stream and bucket: 1 for a single server, 3 for the cluster.
    pub replicas: usize,
}

impl Default for BusOptions {
    fn default() -> Self {
        Self { replicas: 1 }
    }
}

/// A connection with the bus set up: the JetStream context and the three KV buckets.
#[derive(Debug, Clone)]
pub struct Bus {
    pub client: async_nats::Client,
    pub js: Context,
    /// [`subject::JOBS_BUCKET`]: job records.
    pub jobs: kv::Store,
    /// [`subject::RUNNERS_BUCKET`]: runner records.
    pub runners: kv::Store,
    /// [`subject::LEASES_BUCKET`]: leases, entries expire after [`LEASE_TTL`].
    pub leases: kv::Store,
}

/// [`ensure_bus_with`] with default options (one replica).
pub async fn ensure_bus(client: &async_nats::Client) -> Result<Bus, Error> {
    ensure_bus_with(client, &BusOptions::default()).await
}

/// Creates or updates every stream and bucket, then returns the [`Bus`].
pub async fn ensure_bus_with(client: &async_nats::Client, opts: &BusOptions) -> Result<Bus, Error> {
    let js = jetstream::new(client.clone());
    for config in stream_configs(opts.replicas) {
        ensure_stream(&js, config).await?;
    }
    let [jobs, runners, leases] = bucket_configs(opts.replicas);
    let jobs = ensure_bucket(&js, jobs).await?;
    let runners = ensure_bucket(&js, runners).await?;
    let leases = ensure_bucket(&js, leases).await?;
    Ok(Bus {
        client: client.clone(),
        js,
        jobs,
        runners,
        leases,
    })
}

/// The three buckets' configurations: job and runner records, leases.
fn bucket_configs(replicas: usize) -> [kv::Config; 3] {
    let record_bucket = |bucket: &'static str| kv::Config {
        bucket: bucket.to_owned(),
        history: RECORD_HISTORY,
        max_age: RECORD_MAX_AGE,
        storage: StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    };
    [
        record_bucket(subject::JOBS_BUCKET),
        record_bucket(subject::RUNNERS_BUCKET),
        kv::Config {
            bucket: subject::LEASES_BUCKET.to_owned(),
            history: 1,
            max_age: LEASE_TTL,
            storage: StorageType::File,
            num_replicas: replicas,
            ..Default::default()
        },
    ]
}

/// Looks the bus up without changing anything: what a tenant agent (or the webhook under its
/// own identity) does, whose grant allows no stream or bucket administration. Streams are not
/// looked up at all (consumers bind by name).
///
/// A KV handle needs its bucket's stream info, and a stream info request can ask for the
/// stream's subjects, which would list every tenant's record keys; so these identities may
/// not send one. Instead each bucket is "created" with exactly the configuration
/// [`ensure_bus`] gave it: the server answers an identical create of an existing stream with
/// that stream's info (without subjects) and changes nothing, and refuses a create whose
/// configuration differs. Before the central placement's first start this creates the
/// buckets, with the configuration it would give them (their streams are not created, so an
/// agent's consumers wait for it: callers retry).
pub async fn lookup_bus(client: &async_nats::Client) -> Result<Bus, Error> {
    lookup_bus_with(client, &BusOptions::default()).await
}

/// [`lookup_bus`] for a bus set up with `opts` (the replica count is part of the
/// configuration the server compares).
pub async fn lookup_bus_with(client: &async_nats::Client, opts: &BusOptions) -> Result<Bus, Error> {
    let js = jetstream::new(client.clone());
    let [jobs, runners, leases] = bucket_configs(opts.replicas);
    let open = |config: kv::Config| {
        let js = js.clone();
        async move {
            let bucket = config.bucket.clone();
            js.create_key_value(config)
                .await
                .map_err(|source| Error::LookupBucket { bucket, source })
        }
    };
    let jobs = open(jobs).await?;
    let runners = open(runners).await?;
    let leases = open(leases).await?;
    Ok(Bus {
        client: client.clone(),
        js,
        jobs,
        runners,
        leases,
    })
}

fn stream_configs(replicas: usize) -> [StreamConfig; 4] {
    let stream = |name: &str, subjects: &str, retention| StreamConfig {
        name: name.to_owned(),
        subjects: vec![subjects.to_owned()],
        retention,
        storage: StorageType::File,
        max_age: EVENT_MAX_AGE,
        duplicate_window: DUPLICATE_WINDOW,
        num_replicas: replicas,
        ..Default::default()
    };
    [
        stream(
            subject::JOBS_STREAM,
            subject::ALL_JOB_EVENTS,
            RetentionPolicy::Limits,
        ),
        stream(
            subject::PROVISION_STREAM,
            subject::ALL_PROVISION,
            RetentionPolicy::WorkQueue,
        ),
        stream(
            subject::REAP_STREAM,
            subject::ALL_REAP,
            RetentionPolicy::WorkQueue,
        ),
        stream(
            subject::RUNNER_EVENTS_STREAM,
            subject::ALL_RUNNER_EVENTS,
            RetentionPolicy::Limits,
        ),
    ]
}

/// Update, else create; a create that loses to a concurrent one is retried as an update.
async fn ensure_stream(js: &Context, config: StreamConfig) -> Result<(), Error> {
    let stream = config.name.as_str();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = match js.update_stream(config.clone()).await {
            Err(err) if err.kind() == CreateStreamErrorKind::NotFound => {
                js.create_stream(config.clone()).await.map(|_| ())
            }
            other => other.map(|_| ()),
        };
        match result {
            Ok(()) => return Ok(()),
            Err(source) if attempt < ENSURE_ATTEMPTS && is_race(&source.kind()) => {
                tracing::debug!(stream, error = %source, "stream create raced, retrying");
            }
            Err(source) => {
                return Err(Error::EnsureStream {
                    stream: stream.to_owned(),
                    source,
                });
            }
        }
    }
}

/// A create that lost to a concurrent creator, or an answer lost in the shuffle.
fn is_race(kind: &CreateStreamErrorKind) -> bool {
    const STREAM_NAME_EXIST: u64 = 10058;
    match kind {
        CreateStreamErrorKind::JetStream(err) => err.error_code().0 == STREAM_NAME_EXIST,
        CreateStreamErrorKind::NotFound | CreateStreamErrorKind::TimedOut => true,
        _ => false,
    }
}

async fn ensure_bucket(js: &Context, config: kv::Config) -> Result<kv::Store, Error> {
    let bucket = config.bucket.as_str();
    let mut attempt = 0;
    loop {
        attempt += 1;
        match js.create_or_update_key_value(config.clone()).await {
            Ok(store) => return Ok(store),
            Err(source) if attempt < ENSURE_ATTEMPTS => {
                tracing::debug!(bucket, error = %source, "bucket create raced, retrying");
            }
            Err(source) => {
                return Err(Error::EnsureBucket {
                    bucket: bucket.to_owned(),
                    source,
                });
            }
        }
    }
}

impl Bus {
    /// Publishes to a stream and waits for JetStream's ack. With `msg_id`, a second publish
    /// of the same id within [`DUPLICATE_WINDOW`] is not stored again and its ack has
    /// `duplicate == true`.
    pub async fn publish_durable(
        &self,
        subject: &str,
        payload: Vec<u8>,
        msg_id: Option<&str>,
        headers: Option<HeaderMap>,
    ) -> Result<PublishAck, Error> {
        let mut headers = headers.unwrap_or_default();
        if let Some(id) = msg_id {
            let value: HeaderValue = id.parse().map_err(|_| Error::Header {
                header: "Nats-Msg-Id",
            })?;
            headers.insert(NATS_MESSAGE_ID, value);
        }
        let publish_error = |source| Error::Publish {
            subject: subject.to_owned(),
            source,
        };
        self.js
            .publish_with_headers(subject.to_owned(), headers, payload.into())
            .await
            .map_err(publish_error)?
            .await
            .map_err(publish_error)
    }
}
