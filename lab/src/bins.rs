//! Where the programs the lab starts are: the product binary `shr` (the chaos suite runs the
//! actors as `shr run` processes, and the CLI tests run it) and this lab's `shr-lab` (runners
//! are `shr-lab sim runner` processes).
//!
//! Why the real `shr` and not a `shr-lab run`: the chaos suite should kill and restart the
//! binary operators run, built as they build it (`cargo build -p shr`, no simulator inside),
//! not a lab copy of its start-up.
//!
//! Lookup order for each: an environment override (`SHR_BIN`, `SHR_LAB_BIN`); for the lab,
//! this very process when it is `shr-lab`; under cargo (`$CARGO` set: `cargo run`, `cargo
//! test`), `cargo build -p <package>`, which is quick when the binary is fresh and never
//! hands out a stale one; otherwise the file next to this executable.
//!
//! Assumptions: under cargo, building from inside a test or a `cargo run` is allowed (cargo
//! releases its build lock before it runs binaries).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context as _;

/// The product binary's package and name.
pub const PRODUCT: &str = "shr";
/// The lab binary's package and name.
pub const LAB: &str = "shr-lab";

/// The product binary, `shr`.
pub fn product_binary() -> anyhow::Result<PathBuf> {
    locate(PRODUCT, "SHR_BIN", false)
}

/// The lab binary, `shr-lab` (this process when it is the lab binary).
pub fn lab_binary() -> anyhow::Result<PathBuf> {
    locate(LAB, "SHR_LAB_BIN", true)
}

fn locate(name: &str, env: &str, may_be_self: bool) -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().context("finding this executable")?;
    if may_be_self && exe.file_stem().is_some_and(|s| s == name) {
        return Ok(exe);
    }
    if let Some(cargo) = std::env::var_os("CARGO") {
        return cargo_build(Path::new(&cargo), name, &exe);
    }
    let sibling = exe
        .parent()
        .map(|dir| dir.join(name))
        .filter(|p| p.exists());
    sibling.with_context(|| format!("cannot find the {name} binary; set {env}"))
}

/// `cargo build -p <name> --bin <name>` in this workspace, once per process; the built
/// executable's path as cargo reports it.
fn cargo_build(cargo: &Path, name: &str, exe: &Path) -> anyhow::Result<PathBuf> {
    static BUILT: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(path) = built.get(name) {
        return Ok(path.clone());
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the lab crate sits in the workspace")?;
    let mut command = std::process::Command::new(cargo);
    // What cargo sets for the process it runs (a test, `cargo run`) is not the user's
    // environment; left in, it makes the nested build differ from a shell's build and
    // rebuild the product each time the two alternate.
    for (key, _) in std::env::vars_os() {
        let key_str = key.to_string_lossy();
        let set_by_cargo = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_BIN_EXE_",
            "CARGO_CRATE_",
        ]
        .iter()
        .any(|prefix| key_str.starts_with(prefix))
            || [
                "CARGO_TARGET_TMPDIR",
                "CARGO_PRIMARY_PACKAGE",
                "LD_LIBRARY_PATH",
            ]
            .contains(&key_str.as_ref());
        if set_by_cargo {
            command.env_remove(&key);
        }
    }
    command
        .current_dir(workspace)
        .args(["build", "--quiet", "--message-format=json"])
        .args(["-p", name, "--bin", name]);
    // A release lab starts a release product.
    if exe.components().any(|c| c.as_os_str() == "release") {
        command.arg("--release");
    }
    let out = command
        .output()
        .with_context(|| format!("running cargo build -p {name}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "cargo build -p {name} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let path = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == name)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .with_context(|| format!("cargo build -p {name} named no executable"))?;
    built.insert(name.to_owned(), path.clone());
    Ok(path)
}
