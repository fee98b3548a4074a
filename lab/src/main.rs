//! `shr-lab`: the lab around the product. `shr-lab demo` runs the whole system locally,
//! `shr-lab sim github|cloud|runner` serves one simulator (or plays one runner), and
//! `shr-lab bench` measures. The product itself is the `shr` binary.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shr_lab::{bench, demo, sim};

#[derive(Debug, Parser)]
#[command(
    name = "shr-lab",
    version,
    about = "The serverless-hosted-runner lab: demo, simulators, benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run everything locally against NATS and the simulators, queue jobs, report.
    Demo(demo::DemoArgs),
    /// Local simulators of GitHub and the clouds, and the fake runner.
    #[command(subcommand)]
    Sim(sim::SimCommand),
    /// Measure against floors measured in the same run (see the README's performance section).
    Bench(bench::BenchArgs),
    /// The bench's load generator, run by `shr-lab bench` in its own process.
    #[command(hide = true)]
    BenchLoad(bench::LoadArgs),
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SHR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // No colour codes in a log file (the demo's stderr is often redirected).
        .with_ansi(std::io::stderr().is_terminal())
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
            Command::Demo(args) => demo::run(args).await,
            Command::Sim(cmd) => sim::run(cmd).await,
            Command::Bench(args) => bench::run(args).await,
            Command::BenchLoad(args) => bench::run_load(args).await,
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
