//! `shr registration check|import-legacy`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::EXIT_BAD_INPUT;

#[derive(Debug, Subcommand)]
pub enum RegistrationCommand {
    /// Validate a TOML configuration; print a summary or every error (exit 64).
    Check { file: PathBuf },
    /// Convert the predecessor's registration JSON into TOML on stdout. Secrets become
    /// `env:` references; the variables to set are listed on stderr.
    ImportLegacy { file: PathBuf },
}

pub fn run(cmd: RegistrationCommand) -> anyhow::Result<ExitCode> {
    match cmd {
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
