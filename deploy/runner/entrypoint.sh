#!/bin/sh
# shr-runner-entrypoint: start one single-use JIT runner in the official actions runner image.
#
# The JIT config comes from one of (the names the shr providers use):
#   ACTIONS_RUNNER_INPUT_JITCONFIG       the value itself (Azure secureValue, GCP secret env)
#   ACTIONS_RUNNER_INPUT_JITCONFIG_FILE  the path of a mounted file holding it (Alibaba ECI
#                                        mounts /etc/shr/jitconfig)
# It is never printed and never put on a command line: the runner reads
# ACTIONS_RUNNER_INPUT_JITCONFIG as its --jitconfig option and removes it from its own
# environment at start. Every other variable this script used is unset before the exec.
#
# Docker-in-docker (SHR_DIND): "1" starts dockerd first, "0" never does, "auto" (the default)
# starts it when dockerd is installed and the container may run it (CAP_SYS_ADMIN in the
# bounding set, i.e. a privileged container). The wait for its socket is bounded by
# SHR_DOCKERD_WAIT_SECS (default 60). Arguments are passed on to run.sh.
#
# Exit codes: 64 no or empty JIT config, or a bad setting; 66 the file cannot be read;
# 69 SHR_DIND=1 but dockerd did not come up; otherwise run.sh's.
set -eu

RUN_SH="${SHR_RUNNER_RUN_SH:-/home/runner/run.sh}"
DIND="${SHR_DIND:-auto}"
WAIT_SECS="${SHR_DOCKERD_WAIT_SECS:-60}"
DOCKER_SOCK="${SHR_DOCKER_SOCK:-/var/run/docker.sock}"

fail() {
    code="$1"
    shift
    echo "shr-runner-entrypoint: $*" >&2
    exit "$code"
}

# --- the JIT config -------------------------------------------------------------------------
if [ -n "${ACTIONS_RUNNER_INPUT_JITCONFIG:-}" ]; then
    :
elif [ -n "${ACTIONS_RUNNER_INPUT_JITCONFIG_FILE:-}" ]; then
    [ -r "$ACTIONS_RUNNER_INPUT_JITCONFIG_FILE" ] ||
        fail 66 "cannot read the JIT config file named by ACTIONS_RUNNER_INPUT_JITCONFIG_FILE"
    # Command substitution drops trailing newlines; the value never reaches an argv.
    ACTIONS_RUNNER_INPUT_JITCONFIG="$(cat -- "$ACTIONS_RUNNER_INPUT_JITCONFIG_FILE")" ||
        fail 66 "cannot read the JIT config file named by ACTIONS_RUNNER_INPUT_JITCONFIG_FILE"
    [ -n "$ACTIONS_RUNNER_INPUT_JITCONFIG" ] ||
        fail 64 "the JIT config file is empty"
else
    fail 64 "no JIT config: set ACTIONS_RUNNER_INPUT_JITCONFIG or ACTIONS_RUNNER_INPUT_JITCONFIG_FILE"
fi
export ACTIONS_RUNNER_INPUT_JITCONFIG
unset ACTIONS_RUNNER_INPUT_JITCONFIG_FILE

# --- docker-in-docker -----------------------------------------------------------------------
case "$WAIT_SECS" in
    '' | *[!0-9]*) fail 64 "SHR_DOCKERD_WAIT_SECS must be a whole number of seconds" ;;
esac

may_run_dockerd() {
    command -v dockerd >/dev/null 2>&1 || return 1
    bounding="$(sed -n 's/^CapBnd:[[:space:]]*//p' /proc/self/status 2>/dev/null)" || return 1
    [ -n "$bounding" ] || return 1
    # CAP_SYS_ADMIN is bit 21; a default (unprivileged) container's bounding set lacks it.
    [ $(((0x$bounding >> 21) & 1)) -eq 1 ]
}

start_dockerd() {
    if [ "$(id -u)" -eq 0 ]; then
        dockerd >/tmp/dockerd.log 2>&1 &
    else
        # The log is written as the runner user on purpose: only dockerd needs root.
        # shellcheck disable=SC2024
        sudo -n dockerd >/tmp/dockerd.log 2>&1 &
    fi
    waited=0
    while [ ! -e "$DOCKER_SOCK" ]; do
        [ "$waited" -lt "$WAIT_SECS" ] || return 1
        sleep 1
        waited=$((waited + 1))
    done
}

case "$DIND" in
    1 | true)
        start_dockerd || fail 69 "dockerd did not create $DOCKER_SOCK within ${WAIT_SECS}s (see /tmp/dockerd.log)"
        ;;
    auto)
        if may_run_dockerd; then
            start_dockerd || echo "shr-runner-entrypoint: dockerd did not come up; starting the runner without it" >&2
        fi
        ;;
    0 | false) ;;
    *) fail 64 "SHR_DIND must be auto, 1 or 0" ;;
esac

unset DIND WAIT_SECS DOCKER_SOCK SHR_DIND SHR_DOCKERD_WAIT_SECS SHR_DOCKER_SOCK SHR_RUNNER_RUN_SH
unset bounding waited 2>/dev/null || true
exec "$RUN_SH" "$@"
