//! `fake-runner`: the fake Actions runner as a process, for the local provider and manual tests.
//!
//! Takes `--jitconfig <value>`, `--jitconfig-file <path>` or `ACTIONS_RUNNER_INPUT_JITCONFIG`;
//! exits 0 after its one job or when deregistered, 1 on failure.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let options = match simulators::runner::RunnerOptions::from_args(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("fake-runner: {error}");
            return ExitCode::from(64);
        }
    };
    match simulators::runner::run(options).await {
        Ok(outcome) => {
            match outcome.job {
                Some(job) => println!(
                    "runner {} ran job {}: {}",
                    outcome.runner_name, job.job_id, job.conclusion
                ),
                None => println!("runner {} deregistered without a job", outcome.runner_name),
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("fake-runner: {error}");
            ExitCode::FAILURE
        }
    }
}
