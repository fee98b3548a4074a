//! `shr-lab sim …`: the local simulators (GitHub and the clouds) and the fake runner, as
//! processes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use secrecy::SecretString;
use simulators::github::{GitHubSim, SimConfig, WebhookTarget};
use simulators::runner::{JitConfigSource, RunnerOptions};

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Play an actions/runner: read a JIT config (`ACTIONS_RUNNER_INPUT_JITCONFIG`,
    /// `--jitconfig` or `--jitconfig-file`), connect to the GitHub simulator, run one job.
    Runner {
        /// The encoded JIT config (prefer the environment variable: argv is visible to others).
        #[arg(long)]
        jitconfig: Option<String>,
        /// A file holding the encoded JIT config.
        #[arg(long)]
        jitconfig_file: Option<PathBuf>,
    },
    /// Serve the GitHub simulator until interrupted.
    Github {
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: SocketAddr,
        /// A file holding the one accepted token.
        #[arg(long)]
        token_file: PathBuf,
        /// Where to deliver `workflow_job` webhooks.
        #[arg(long)]
        webhook_url: Option<String>,
        /// A file holding the webhook secret.
        #[arg(long)]
        webhook_secret_file: Option<PathBuf>,
        /// How long an assigned job runs, in milliseconds.
        #[arg(long, default_value_t = 1000)]
        job_duration_ms: u64,
        /// Secondary limit on JIT registrations per token per minute.
        #[arg(long)]
        jit_per_minute: Option<u32>,
        /// Repositories that exist (`owner/name`), comma separated.
        #[arg(long, default_value = "acme/app")]
        repos: String,
    },
    /// Serve one cloud simulator until interrupted; started instances run `shr-lab sim runner`.
    /// Writes the tenant's provider section (TOML, secrets as `file:` references) into the
    /// state dir and prints its path.
    Cloud {
        #[arg(long)]
        platform: bus_schema::ProviderKind,
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Where the sim-only credentials and the provider section are written.
        #[arg(long)]
        state_dir: PathBuf,
        /// Percentage of API calls that fail with the platform's transient error.
        #[arg(long, default_value_t = 0)]
        failure_percent: u32,
        /// Seed of the failure injection.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The tenant named in the provider section's header.
        #[arg(long, default_value = "demo")]
        tenant: String,
    },
}

fn read_secret(path: &PathBuf) -> anyhow::Result<SecretString> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    Ok(SecretString::from(text.trim().to_owned()))
}

pub async fn run(cmd: SimCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SimCommand::Runner {
            jitconfig,
            jitconfig_file,
        } => {
            let source = match (jitconfig, jitconfig_file) {
                (Some(value), _) => JitConfigSource::Value(bus_schema::Secret::new(value)),
                (None, Some(path)) => JitConfigSource::File(path),
                (None, None) => JitConfigSource::Env,
            };
            match simulators::runner::run(RunnerOptions::new(source)).await {
                Ok(outcome) => {
                    match outcome.job {
                        Some(job) => println!(
                            "runner {} ran job {}: {}",
                            outcome.runner_name, job.job_id, job.conclusion
                        ),
                        None => {
                            println!("runner {} deregistered without a job", outcome.runner_name)
                        }
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(error) => {
                    eprintln!("sim runner: {error}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        SimCommand::Github {
            listen,
            token_file,
            webhook_url,
            webhook_secret_file,
            job_duration_ms,
            jit_per_minute,
            repos,
        } => {
            let webhook = match (webhook_url, webhook_secret_file) {
                (Some(url), Some(secret)) => Some(WebhookTarget {
                    url,
                    secret: read_secret(&secret)?,
                }),
                (None, None) => None,
                _ => anyhow::bail!("--webhook-url and --webhook-secret-file go together"),
            };
            let config = SimConfig {
                tokens: vec![read_secret(&token_file)?],
                webhook,
                job_duration: Duration::from_millis(job_duration_ms),
                jit_per_minute,
                repos: repos.split(',').map(|r| r.trim().to_owned()).collect(),
                ..SimConfig::default()
            };
            let sim = GitHubSim::start(config, listen).await?;
            eprintln!(
                "GitHub simulator at {} (admin API under /_sim/)",
                sim.base_url()
            );
            let _ = tokio::signal::ctrl_c().await;
            Ok(ExitCode::SUCCESS)
        }
        SimCommand::Cloud {
            platform,
            listen,
            state_dir,
            failure_percent,
            seed,
            tenant,
        } => {
            let cloud = crate::clouds::start_cloud_sim(
                platform,
                listen,
                &state_dir,
                simulators::cloud::Launch {
                    program: crate::bins::lab_binary()?,
                    args: vec!["sim".into(), "runner".into()],
                },
                failure_percent,
                seed,
            )
            .await?;
            let path = state_dir.join(format!("{platform}-provider.toml"));
            std::fs::write(&path, cloud.provider_toml(&tenant))
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
            eprintln!("{platform} simulator at {}", cloud.base_url());
            println!("{}", path.display());
            let _ = tokio::signal::ctrl_c().await;
            Ok(ExitCode::SUCCESS)
        }
    }
}
