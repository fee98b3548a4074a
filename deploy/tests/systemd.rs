#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The systemd units pass `systemd-analyze verify` with no warning (skipped, with a notice,
//! where the tool is absent), and carry the hardening the README promises.

use std::path::Path;
use std::process::Command;

use deploy::{deploy_dir, files_with_suffix};

fn units() -> Vec<std::path::PathBuf> {
    let units = files_with_suffix(&deploy_dir().join("systemd"), &[".service"]).unwrap();
    assert!(units.len() >= 2, "{units:?}");
    units
}

fn have_systemd_analyze() -> bool {
    Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Copies a unit into `dir` with the binary replaced by a stand-in (verify checks that
/// ExecStart is executable) and a template instantiated; returns the copy's path.
fn staged(unit: &Path, dir: &Path, edit: impl Fn(String) -> String) -> std::path::PathBuf {
    let stand_in = dir.join("shr");
    std::fs::write(&stand_in, "#!/bin/sh\nexit 0\n").unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&stand_in, std::fs::Permissions::from_mode(0o755)).unwrap();
    let text = std::fs::read_to_string(unit)
        .unwrap()
        .replace("/usr/local/bin/shr", stand_in.to_str().unwrap());
    let name = unit
        .file_name()
        .unwrap()
        .to_string_lossy()
        .replace("@.service", "@acme.service");
    let path = dir.join(name);
    std::fs::write(&path, edit(text)).unwrap();
    path
}

fn verify(path: &Path) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(path)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn units_pass_systemd_analyze_verify_without_warnings() {
    if !have_systemd_analyze() {
        eprintln!("SKIPPED: systemd-analyze is not installed; the units were not verified");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for unit in units() {
        let path = staged(&unit, dir.path(), |t| t);
        let (ok, output) = verify(&path);
        assert!(
            ok && output.trim().is_empty(),
            "{}:\n{output}",
            unit.display()
        );
    }
    // The check is not blind: an unknown key is reported.
    let bad = staged(&units()[0], dir.path(), |t| {
        t.replace("[Service]", "[Service]\nNoSuchKey=1")
    });
    let (_, output) = verify(&bad);
    assert!(output.contains("NoSuchKey"), "{output}");
}

#[test]
fn units_are_hardened_and_load_secrets_as_credentials() {
    for unit in units() {
        let text = std::fs::read_to_string(&unit).unwrap();
        let has = |line: &str| text.lines().any(|l| l.trim() == line);
        for line in [
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "Restart=on-failure",
            "RestartPreventExitStatus=64",
            "DynamicUser=yes",
            "CapabilityBoundingSet=",
        ] {
            assert!(has(line), "{}: {line}", unit.display());
        }
        assert!(text.contains("LoadCredential="), "{}", unit.display());
        assert!(
            !text.contains("EnvironmentFile="),
            "{}: secrets as credentials",
            unit.display()
        );
        assert!(
            text.contains("ExecStartPre=/usr/local/bin/shr registration check"),
            "{}",
            unit.display()
        );
    }
}
