//! `shr registration check|import-legacy|apply|list|remove`.
//!
//! `apply`, `list` and `remove` work on live registrations (the registrations bucket; see
//! `actors::live`): they connect with the configuration's NATS identity, so a tenant's
//! credentials reach only that tenant's registrations, as the server enforces.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::EXIT_BAD_INPUT;

mod live;

#[derive(Debug, Subcommand)]
pub enum RegistrationCommand {
    /// Validate a TOML configuration; print a summary or every error (exit 64).
    Check { file: PathBuf },
    /// Convert the predecessor's registration JSON into TOML on stdout. Secrets become
    /// `env:` references; the variables to set are listed on stderr.
    ImportLegacy { file: PathBuf },
    /// Validate a file of `[[registrations]]` tables against the configuration (errors as
    /// FILE: FIELD: REASON, exit 64) and store them: running processes pick them up without
    /// a restart.
    Apply {
        file: PathBuf,
        #[command(flatten)]
        target: Target,
    },
    /// List live registrations (those this identity may read).
    List {
        #[command(flatten)]
        target: Target,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a live registration: polling stops and nothing new is provisioned for it; its
    /// running jobs finish, its runners are reaped, then the entry goes.
    Remove {
        name: String,
        #[command(flatten)]
        target: Target,
    },
}

/// The configuration whose NATS server, identity and tenants the live commands use.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The configuration (`[controller] nats_url`, its credentials, its tenants).
    #[arg(long, short)]
    pub config: PathBuf,
    /// The NATS server (overrides the configuration's).
    #[arg(long, env = "SHR_NATS_URL")]
    pub nats_url: Option<String>,
}

pub async fn run(cmd: RegistrationCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RegistrationCommand::Apply { file, target } => live::apply(&file, &target).await,
        RegistrationCommand::List { target, json } => live::list(&target, json).await,
        RegistrationCommand::Remove { name, target } => live::remove(&name, &target).await,
        RegistrationCommand::Check { file } => {
            match registration::Config::load(&file, &::clouds::Registry) {
                Ok(config) => {
                    print!("{}", config.summary());
                    println!("{}: ok", file.display());
                    Ok(ExitCode::SUCCESS)
                }
                Err(errors) => {
                    eprintln!("{errors}");
                    Ok(ExitCode::from(EXIT_BAD_INPUT))
                }
            }
        }
        RegistrationCommand::ImportLegacy { file } => {
            let name = file.display().to_string();
            let text = match std::fs::read_to_string(&file) {
                Ok(text) => text,
                Err(error) => {
                    eprintln!("{name}: (file): cannot read: {error}");
                    return Ok(ExitCode::from(EXIT_BAD_INPUT));
                }
            };
            match registration::legacy::import_legacy(&text, &name, &::clouds::Registry) {
                Ok(import) => {
                    print!("{}", import.toml);
                    if !import.env_vars.is_empty() {
                        eprintln!("set these environment variables before `shr run`:");
                        for (var, what) in &import.env_vars {
                            eprintln!("  {var}  ({what})");
                        }
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(errors) => {
                    eprintln!("{errors}");
                    Ok(ExitCode::from(EXIT_BAD_INPUT))
                }
            }
        }
    }
}
