//! The live registration commands: apply, list, remove.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use bus_schema::{LiveRegistration, LiveState, subject};
use shr_nats::Records;
use shr_nats::security::Role;

use super::Target;
use crate::EXIT_BAD_INPUT;

/// How long a write may take before it counts as refused: the server answers a write outside
/// the identity's grant with a permissions error on the connection, not on the request.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// The configuration, or its errors printed (exit 64).
fn load(target: &Target) -> Result<registration::Config, ExitCode> {
    registration::Config::load(&target.config, &::clouds::Registry).map_err(|errors| {
        eprintln!("{errors}");
        ExitCode::from(EXIT_BAD_INPUT)
    })
}

/// Connects as the configuration's identity; the bus is looked up (a tenant agent or the
/// webhook) or set up (central), as `shr run` does.
async fn connect(
    target: &Target,
    config: &registration::Config,
) -> anyhow::Result<(Option<Role>, Records<LiveRegistration>)> {
    let url = (target.nats_url.clone())
        .or_else(|| config.controller.nats_connect_url())
        .context(
            "no NATS server: pass --nats-url (or SHR_NATS_URL) or set [controller] nats_url",
        )?;
    let identity = crate::wiring::nats_identity(config)?;
    let role = identity.as_ref().map(|(role, _)| role.clone());
    let shown = shr_nats::redact_url(&url);
    let client = shr_nats::connect_as(
        &url,
        "shr-registration",
        &identity.map(|(_, i)| i).unwrap_or_default(),
    )
    .await
    .with_context(|| format!("connecting to NATS at {shown}"))?;
    let bus = match role {
        None | Some(Role::Central) => {
            let options = shr_nats::BusOptions {
                replicas: config.controller.nats_replicas,
            };
            shr_nats::ensure_bus_with(&client, &options).await?
        }
        Some(_) => {
            let options = shr_nats::BusOptions {
                replicas: config.controller.nats_replicas,
            };
            shr_nats::lookup_bus_with(&client, &options).await?
        }
    };
    Ok((role, Records::new(bus.registrations)))
}

pub async fn apply(file: &Path, target: &Target) -> anyhow::Result<ExitCode> {
    let config = match load(target) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let name = file.display().to_string();
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("{name}: (file): cannot read: {error}");
            return Ok(ExitCode::from(EXIT_BAD_INPUT));
        }
    };
    let tables = match config.live_tables(&text, &name, &::clouds::Registry) {
        Ok(tables) => tables,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::from(EXIT_BAD_INPUT));
        }
    };
    let (_, records) = connect(target, &config).await?;
    for table in tables {
        let key = subject::registration_key(&table.tenant, &table.name)?;
        let entry = LiveRegistration {
            name: table.name.clone(),
            tenant: table.tenant.clone(),
            toml: table.toml,
            state: LiveState::Active,
            updated_at: bus_schema::now_millis(),
        };
        let payload = bus_schema::encode(&entry)?;
        let put = records.store().put(key.as_str(), payload.into());
        match tokio::time::timeout(WRITE_TIMEOUT, put).await {
            Ok(Ok(_)) => println!("applied {} (tenant {})", table.name, table.tenant),
            Ok(Err(error)) => {
                eprintln!(
                    "error: registration {} (tenant {}) was refused: {error}",
                    table.name, table.tenant
                );
                return Ok(ExitCode::FAILURE);
            }
            Err(_) => {
                eprintln!(
                    "error: registration {} (tenant {}) was refused: the NATS server did not \
                     accept the write (these credentials may apply only their own tenant's \
                     registrations)",
                    table.name, table.tenant
                );
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The live registrations this identity may read, by key.
async fn entries(
    role: Option<&Role>,
    records: &Records<LiveRegistration>,
) -> anyhow::Result<Vec<(String, LiveRegistration, u64)>> {
    let keys = match role {
        Some(Role::Agent(tenant)) => {
            records
                .keys_matching(&subject::registration_keys_of(tenant)?)
                .await?
        }
        _ => records.keys().await?,
    };
    let mut out = Vec::new();
    for key in keys {
        if let Some((entry, revision)) = records.get(&key).await? {
            out.push((key, entry, revision));
        }
    }
    Ok(out)
}

pub async fn list(target: &Target, json: bool) -> anyhow::Result<ExitCode> {
    let config = match load(target) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let (role, records) = connect(target, &config).await?;
    let all = entries(role.as_ref(), &records).await?;
    if json {
        let rows: Vec<serde_json::Value> = (all.iter())
            .map(|(_, e, _)| {
                serde_json::json!({
                    "name": e.name,
                    "tenant": e.tenant,
                    "state": match e.state { LiveState::Active => "active", LiveState::Draining => "draining" },
                    "updated_at": e.updated_at,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<24} {:<16} {:<9} UPDATED", "NAME", "TENANT", "STATE");
    let now = bus_schema::now_millis();
    for (_, e, _) in &all {
        let state = match e.state {
            LiveState::Active => "active",
            LiveState::Draining => "draining",
        };
        let age = (now - e.updated_at).max(0) / 1000;
        println!("{:<24} {:<16} {:<9} {age}s ago", e.name, e.tenant, state);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn remove(name: &str, target: &Target) -> anyhow::Result<ExitCode> {
    let config = match load(target) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let (role, records) = connect(target, &config).await?;
    let all = entries(role.as_ref(), &records).await?;
    let Some((key, mut entry, revision)) = all.into_iter().find(|(_, e, _)| e.name == name) else {
        eprintln!("error: no live registration `{name}` (visible to these credentials)");
        return Ok(ExitCode::FAILURE);
    };
    if entry.state == LiveState::Draining {
        println!("{name} is already draining");
        return Ok(ExitCode::SUCCESS);
    }
    entry.state = LiveState::Draining;
    entry.updated_at = bus_schema::now_millis();
    let update = records.update(&key, &entry, revision);
    match tokio::time::timeout(WRITE_TIMEOUT, update).await {
        Ok(Ok(_)) => {
            println!(
                "{name} is draining: no more polling or new runners; it disappears from the list once its runners are reaped"
            );
            Ok(ExitCode::SUCCESS)
        }
        Ok(Err(error)) => {
            eprintln!("error: removing {name}: {error}");
            Ok(ExitCode::FAILURE)
        }
        Err(_) => {
            eprintln!("error: removing {name}: the NATS server did not accept the write");
            Ok(ExitCode::FAILURE)
        }
    }
}
