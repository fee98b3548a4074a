//! `shr`: the serverless-hosted-runner binary.
//!
//! One binary for every role: the actors (`shr run`), the all-in-one demo (`shr demo`), the
//! registration tools, the local simulators and the benchmarks.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shr::{EXIT_BAD_INPUT, bench, demo, registration_cmd, sim, wiring};

#[derive(Debug, Parser)]
#[command(
    name = "shr",
    version,
    about = "Single-use GitHub Actions runners on serverless containers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the actors a configuration places in this process.
    Run {
        /// The registration/controller configuration (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run everything locally against NATS and the simulators, queue jobs, report.
    Demo(demo::DemoArgs),
    /// Check or import registrations.
    #[command(subcommand)]
    Registration(registration_cmd::RegistrationCommand),
    /// Local simulators of GitHub and the clouds, and the fake runner.
    #[command(subcommand)]
    Sim(sim::SimCommand),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SHR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("error: starting the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Run { config } => run(config).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Registration(cmd) => registration_cmd::run(cmd),
            Command::Sim(cmd) => sim::run(cmd).await,
            Command::Bench(cmd) => bench::run(cmd).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(path: PathBuf) -> anyhow::Result<ExitCode> {
    let config = match registration::Config::load(&path, &::clouds::Registry) {
        Ok(config) => std::sync::Arc::new(config),
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::from(EXIT_BAD_INPUT));
        }
    };
    let work_dir = config
        .controller
        .work_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("work"));
    std::fs::create_dir_all(&work_dir)?;
    // Without a NATS URL, start a local server with its store under the work dir.
    let (nats_url, _server) = match &config.controller.nats_url {
        Some(url) => (url.to_string(), None),
        None => {
            let server = shr_nats::NatsServer::start(shr_nats::ServerOptions {
                store_dir: Some(work_dir.join("nats")),
                ..Default::default()
            })
            .await?;
            eprintln!("started local nats-server at {}", server.url());
            (server.url(), Some(server))
        }
    };
    let running = wiring::start(
        config,
        wiring::StartOptions {
            nats_url,
            holder_id: shr::holder_id(),
            work_dir,
            runner_program: std::env::current_exe()?,
            webhook_listener: None,
            sweep_interval: sweep_interval(),
        },
    )
    .await?;
    if let Some(addr) = running.webhook_addr {
        eprintln!("webhook listening on {addr}");
    }
    running
        .wait(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(ExitCode::SUCCESS)
}

/// The sweep interval: `$SHR_SWEEP_INTERVAL_SECS` (the chaos suite sets a short one), else
/// [`actors::sweep::DEFAULT_INTERVAL`].
fn sweep_interval() -> std::time::Duration {
    std::env::var("SHR_SWEEP_INTERVAL_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map_or(
            actors::sweep::DEFAULT_INTERVAL,
            std::time::Duration::from_secs,
        )
}
