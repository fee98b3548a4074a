//! `shr bench …`: measured numbers for the README (never timed assertions in tests).

use std::process::ExitCode;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Signed `workflow_job` deliveries against the webhook actor and a local nats-server.
    Webhook {
        /// Deliveries per phase.
        #[arg(long, default_value_t = 5000)]
        count: usize,
    },
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Webhook { count } => {
            let _ = count;
            anyhow::bail!("not implemented yet")
        }
    }
}
