#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The two Dockerfiles say what the README promises: `shr` built in the official Rust image
//! with `--locked` and shipped alone on a small non-root runtime; the runner image on a pinned
//! official actions runner with the entrypoint installed.

use deploy::{deploy_dir, repo_root};

/// Instructions with continuation lines joined, comments dropped.
fn instructions(path: &str) -> Vec<String> {
    let text = std::fs::read_to_string(deploy_dir().join(path)).unwrap();
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out
}

/// The instructions of each stage.
fn stages(path: &str) -> Vec<Vec<String>> {
    let mut stages: Vec<Vec<String>> = Vec::new();
    for i in instructions(path) {
        if i.starts_with("FROM ") {
            stages.push(Vec::new());
        }
        if let Some(stage) = stages.last_mut() {
            stage.push(i);
        }
    }
    stages
}

#[test]
fn shr_image_builds_locked_in_the_rust_image_and_ships_the_binary_alone_as_non_root() {
    let stages = stages("Dockerfile");
    assert_eq!(stages.len(), 2, "{stages:?}");
    let (builder, runtime) = (&stages[0], &stages[1]);
    assert!(builder[0].contains("library/rust:") && builder[0].contains(" AS builder"));
    assert!(
        builder
            .iter()
            .any(|i| i.contains("cargo build --release -p shr --locked"))
    );
    assert!(runtime[0].contains("distroless/cc"), "{}", runtime[0]);
    let copies: Vec<&String> = runtime.iter().filter(|i| i.starts_with("COPY")).collect();
    assert!(
        copies.iter().all(|c| c.contains("--from=builder")),
        "{copies:?}"
    );
    assert!(copies.iter().any(|c| c.ends_with("/usr/local/bin/shr")));
    for i in runtime {
        for banned in ["shr-lab", "simulators", "lab/", "nats-server"] {
            assert!(!i.contains(banned), "{banned} in the runtime stage: {i}");
        }
    }
    let user = runtime
        .iter()
        .rev()
        .find(|i| i.starts_with("USER "))
        .expect("a USER");
    assert!(
        !user.contains("root") && !user.ends_with(" 0") && !user.contains(" 0:"),
        "{user}"
    );
    assert!(
        runtime
            .iter()
            .any(|i| i == "ENTRYPOINT [\"/usr/local/bin/shr\"]")
    );

    let ignore = std::fs::read_to_string(repo_root().join(".dockerignore")).unwrap();
    assert!(
        ignore.lines().any(|l| l.trim() == "target/"),
        "target/ stays out of the context"
    );
}

#[test]
fn runner_image_pins_the_official_runner_and_installs_the_entrypoint() {
    let all = instructions("runner/Dockerfile");
    let version = all
        .iter()
        .find_map(|i| i.strip_prefix("ARG RUNNER_VERSION="))
        .expect("a pinned RUNNER_VERSION");
    let parts: Vec<&str> = version.split('.').collect();
    assert!(
        parts.len() == 3 && parts.iter().all(|p| p.parse::<u32>().is_ok()),
        "pinned to x.y.z: {version}"
    );
    assert!(
        all.iter()
            .any(|i| i == "FROM ghcr.io/actions/actions-runner:${RUNNER_VERSION}")
    );
    let copy = all.iter().find(|i| i.starts_with("COPY")).unwrap();
    assert!(
        copy.contains("entrypoint.sh /usr/local/bin/shr-runner-entrypoint"),
        "{copy}"
    );
    assert!(copy.contains("--chmod=0755"));
    assert!(all.iter().any(|i| i == "USER runner"));
    assert!(
        all.iter()
            .any(|i| i == "ENTRYPOINT [\"/usr/local/bin/shr-runner-entrypoint\"]")
    );
}
