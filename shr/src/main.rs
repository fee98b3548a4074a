//! `shr`: the serverless-hosted-runner binary.
//!
//! One binary for every role: the actors (`shr run`) and the registration tools. The demo,
//! the simulators and the benchmarks are the lab's (`shr-lab`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use shr::{EXIT_BAD_INPUT, registration_cmd, status_cmd, wiring};

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
    /// Check or import registrations.
    #[command(subcommand)]
    Registration(registration_cmd::RegistrationCommand),
    /// Key pairs for sealed JIT configs.
    #[command(subcommand)]
    Keys(shr::keys_cmd::KeysCommand),
    /// What is queued, running and stuck, read from the records.
    Status(status_cmd::Source),
    /// Runner records.
    #[command(subcommand)]
    Runners(status_cmd::RunnersCommand),
    /// What the reaper and the sweep would do, and why (`--dry-run`).
    Reap(status_cmd::ReapArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _telemetry = match telemetry::Settings::from_env().and_then(|s| telemetry::init(&s)) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
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
            Command::Registration(cmd) => registration_cmd::run(cmd),
            Command::Keys(cmd) => shr::keys_cmd::run(cmd),
            Command::Status(source) => status_cmd::status(source).await,
            Command::Runners(cmd) => status_cmd::runners(cmd).await,
            Command::Reap(args) => status_cmd::reap(args).await,
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
    // From here on SIGTERM and SIGINT no longer kill the process: they stop it in order.
    let mut signals = StopSignals::install()?;
    // The local nats-server, if one is started, lives here so that every way out of `serve`
    // (done, an error, a signal) passes the clean stop below; a panic drops it (`SIGKILL`).
    let mut server = None;
    let outcome = serve(config, &mut server, &mut signals).await;
    if let Some(mut server) = server {
        match server.stop(NATS_STOP_GRACE).await {
            Ok(()) => eprintln!("stopped local nats-server"),
            Err(error) => eprintln!("warning: stopping local nats-server: {error:#}"),
        }
    }
    // The reason comes last, after the drain and the server stop have said their piece.
    outcome.or_else(|error| {
        eprintln!("error: {}", wiring::report(&error));
        Ok(ExitCode::FAILURE)
    })
}

/// How long open scrapes of the metrics listener get to finish once the drain has begun.
const METRICS_STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// How long the local nats-server gets to exit after `SIGTERM` before it is killed.
const NATS_STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Starts the local nats-server (into `server`) unless the configuration names one, then the
/// actors, and runs them until a stop signal or an actor failure.
async fn serve(
    config: std::sync::Arc<registration::Config>,
    server: &mut Option<shr_nats::NatsServer>,
    signals: &mut StopSignals,
) -> anyhow::Result<ExitCode> {
    let work_dir = config
        .controller
        .work_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("work"));
    std::fs::create_dir_all(&work_dir)?;
    // Without a NATS URL, start a local server with its store under the work dir.
    let nats_url = match &config.controller.nats_url {
        Some(url) => url.to_string(),
        None => {
            let options = shr_nats::ServerOptions {
                store_dir: Some(work_dir.join("nats")),
                own_process_group: true,
                ..Default::default()
            };
            let started = tokio::select! {
                started = shr_nats::NatsServer::start(options) => started?,
                signal = signals.recv() => {
                    eprintln!("received {signal} while starting; stopping");
                    return Ok(ExitCode::SUCCESS);
                }
            };
            let started = server.insert(started);
            let pid = started.pid().map_or_else(|| "?".into(), |p| p.to_string());
            eprintln!("started local nats-server at {} (pid {pid})", started.url());
            started.url()
        }
    };
    let options = wiring::StartOptions {
        nats_url,
        holder_id: shr::holder_id(),
        work_dir,
        local_runner: None,
        webhook_listener: None,
        sweep_interval: sweep_interval(),
    };
    let running = tokio::select! {
        running = wiring::start(config, options) => running?,
        signal = signals.recv() => {
            eprintln!("received {signal} while starting; stopping");
            return Ok(ExitCode::SUCCESS);
        }
    };
    if let Some(addr) = running.webhook_addr {
        eprintln!("webhook listening on {addr}");
    }
    let metrics = shr::metrics_server::start(&running, running.cancel_token()).await?;
    eprintln!("metrics listening on {}", metrics.addr);
    eprintln!(
        "shr running (pid {}); SIGTERM or SIGINT stops it",
        std::process::id()
    );
    let stop = async {
        let signal = signals.recv().await;
        eprintln!("received {signal}; draining the actors");
    };
    let drained = running.wait(stop, shutdown_grace()).await;
    // The drain cancelled the listener with the actors; wait for open scrapes to finish.
    if metrics.stopped(METRICS_STOP_GRACE).await {
        eprintln!("metrics listener stopped");
    } else {
        eprintln!("warning: the metrics listener outlived the drain; aborted it");
    }
    drained?;
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM (what orchestrators send) and SIGINT (Ctrl-C): either one stops `shr run` in order.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("handling SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("handling SIGINT")?,
        })
    }

    /// The name of the next stop signal received.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// How long the actors get to finish the messages in hand once stopped:
/// `$SHR_SHUTDOWN_GRACE_SECS`, else [`wiring::SHUTDOWN_GRACE`].
fn shutdown_grace() -> std::time::Duration {
    std::env::var("SHR_SHUTDOWN_GRACE_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(wiring::SHUTDOWN_GRACE, std::time::Duration::from_secs)
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
