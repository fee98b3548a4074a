//! The runner container's command: fetch the JIT config from Secrets Manager under the
//! task role, then start the official runner image's `run.sh` with it in the environment.
//!
//! The script is a constant: it holds no secret and no per-runner value. The task gets the
//! secret's ARN, the region and the endpoint as plain environment overrides. It relies on
//! what the official image (`ghcr.io/actions/actions-runner`) ships: `sh`, `curl` (≥ 7.75,
//! for `--aws-sigv4`) and `jq`.
//!
//! Guarantees:
//! - the task role's credentials and the JIT config pass only through pipes and the shell's
//!   own variables (`printf` is a builtin), never through a program's argv: curl reads the
//!   key pair and token from its config on stdin (`-K -`);
//! - the JIT config reaches the runner as `ACTIONS_RUNNER_INPUT_JITCONFIG`, which the runner
//!   reads as its `--jitconfig` option, so it is never on `run.sh`'s command line;
//! - the secret is readable only once the controller has tagged it with this task's session
//!   (see the README), so the script retries for up to a minute;
//! - an empty answer is a failed read: jq 1.6 (Ubuntu 22.04, the runner image's base) exits
//!   0 on empty input even with `-e`, so a denied `GetSecretValue` (curl prints nothing)
//!   would otherwise start the runner with an empty JIT config.

/// The env var naming the secret (its ARN) the entrypoint reads.
pub const SECRET_ENV: &str = "SHR_JIT_SECRET_ID";
/// The env var with the region of the Secrets Manager endpoint.
pub const REGION_ENV: &str = "SHR_AWS_REGION";
/// The env var with the Secrets Manager endpoint URL.
pub const ENDPOINT_ENV: &str = "SHR_SECRETS_ENDPOINT";
/// The env var the runner reads its JIT config from.
pub const JIT_ENV: &str = "ACTIONS_RUNNER_INPUT_JITCONFIG";
/// The runner's start script in the official image.
pub const RUN_SH: &str = "/home/runner/run.sh";
/// The exit code when the secret cannot be read.
pub const EXIT_NO_SECRET: i32 = 70;

/// The `sh -c` script.
pub const SCRIPT: &str = r#"set -eu
creds="$(curl -fsS --retry 5 "http://169.254.170.2${AWS_CONTAINER_CREDENTIALS_RELATIVE_URI}")"
i=0
while :; do
  if value="$(printf '%s' "$creds" \
      | jq -r '"user = \"\(.AccessKeyId):\(.SecretAccessKey)\"\nheader = \"x-amz-security-token: \(.Token)\""' \
      | curl -fsS -K - --aws-sigv4 "aws:amz:${SHR_AWS_REGION}:secretsmanager" \
          -H 'Content-Type: application/x-amz-json-1.1' \
          -H 'X-Amz-Target: secretsmanager.GetSecretValue' \
          --data "{\"SecretId\":\"${SHR_JIT_SECRET_ID}\"}" "${SHR_SECRETS_ENDPOINT}" \
      | jq -er .SecretString)" && [ -n "$value" ]; then
    break
  fi
  i=$((i + 1))
  if [ "$i" -ge 30 ]; then echo 'shr: cannot read the JIT config secret' >&2; exit 70; fi
  sleep 2
done
unset creds
export ACTIONS_RUNNER_INPUT_JITCONFIG="$value"
unset value
exec /home/runner/run.sh
"#;

/// The container command override: `["sh", "-c", SCRIPT]`.
pub fn command() -> Vec<String> {
    vec!["sh".into(), "-c".into(), SCRIPT.into()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_starts_run_sh_with_the_jit_config_from_the_environment() {
        assert!(SCRIPT.contains(&format!("export {JIT_ENV}=")));
        assert!(SCRIPT.trim_end().ends_with(&format!("exec {RUN_SH}")));
        assert!(!SCRIPT.contains("--jitconfig"));
        for var in [SECRET_ENV, REGION_ENV, ENDPOINT_ENV] {
            assert!(SCRIPT.contains(&format!("${{{var}}}")), "{var}");
        }
        assert!(SCRIPT.contains(&format!("exit {EXIT_NO_SECRET}")));
        assert!(SCRIPT.contains("curl -fsS -K -"));
        assert!(
            SCRIPT.contains(r#"&& [ -n "$value" ]; then"#),
            "an empty read is a failure"
        );
    }
}
