//! `shr status`, `shr runners list` and `shr reap --dry-run`: read-only views of the KV
//! records (see [`crate::status`]).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use crate::status::{self, Snapshot};

/// Where to read the records from.
#[derive(Debug, Clone, Args)]
pub struct Source {
    /// The configuration: its `[controller] nats_url`, tenants and registrations.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// The NATS server (overrides the configuration's).
    #[arg(long, env = "SHR_NATS_URL")]
    pub nats_url: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `shr runners …`.
#[derive(Debug, Subcommand)]
pub enum RunnersCommand {
    /// List runner records.
    List {
        #[command(flatten)]
        source: Source,
        /// Only this tenant's runners.
        #[arg(long)]
        tenant: Option<String>,
        /// Only runners in this state (`running`, `pending_force_delete`, …).
        #[arg(long)]
        state: Option<String>,
    },
}

/// `shr reap`.
#[derive(Debug, Args)]
pub struct ReapArgs {
    #[command(flatten)]
    pub source: Source,
    /// Show what the reaper and the sweep would do, and why; change nothing. Required: this
    /// command only plans.
    #[arg(long, required = true)]
    pub dry_run: bool,
}

async fn open(source: &Source) -> anyhow::Result<(Option<registration::Config>, shr_nats::Bus)> {
    let config = match &source.config {
        Some(path) => Some(
            registration::Config::load(path, &::clouds::Registry)
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        ),
        None => None,
    };
    let url = source
        .nats_url
        .clone()
        .or_else(|| {
            config
                .as_ref()
                .and_then(|c| c.controller.nats_url.as_ref().map(ToString::to_string))
        })
        .context("no NATS server: pass --nats-url (or SHR_NATS_URL) or a --config with nats_url")?;
    let client = shr_nats::connect(&url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let bus = shr_nats::ensure_bus(&client).await?;
    Ok((config, bus))
}

fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `shr status`.
pub async fn status(source: Source) -> anyhow::Result<ExitCode> {
    let (config, bus) = open(&source).await?;
    let records = status::load(&bus).await?;
    let snap = Snapshot::build(&records, config.as_ref(), bus_schema::now_millis());
    if source.json {
        print_json(&snap)?;
    } else {
        print!("{}", snap.render_text());
    }
    Ok(ExitCode::SUCCESS)
}

/// `shr runners …`.
pub async fn runners(cmd: RunnersCommand) -> anyhow::Result<ExitCode> {
    let RunnersCommand::List {
        source,
        tenant,
        state,
    } = cmd;
    let (config, bus) = open(&source).await?;
    let records = status::load(&bus).await?;
    let rows = status::runner_rows(
        &records,
        config.as_ref(),
        tenant.as_deref(),
        state.as_deref(),
        bus_schema::now_millis(),
    );
    if source.json {
        print_json(&rows)?;
    } else {
        print!("{}", status::render_runner_rows(&rows));
    }
    Ok(ExitCode::SUCCESS)
}

/// `shr reap --dry-run`.
pub async fn reap(args: ReapArgs) -> anyhow::Result<ExitCode> {
    let (config, bus) = open(&args.source).await?;
    let records = status::load(&bus).await?;
    let plan = status::reap_plan(&records, config.as_ref(), bus_schema::now_millis());
    if args.source.json {
        print_json(&plan)?;
    } else {
        println!("RUNNER                          STATE                 WOULD            WHY");
        for p in &plan {
            println!(
                "{:<31} {:<21} {:<16} {}",
                p.runner, p.state, p.action, p.reason
            );
        }
        println!(
            "(dry run: from the records alone; the reaper also asks the cloud and GitHub, and the sweep marks instances with no record as orphans)"
        );
    }
    Ok(ExitCode::SUCCESS)
}
