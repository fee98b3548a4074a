//! `shr keys`: key pairs for sealed JIT configs.
//!
//! `shr keys generate --out FILE` writes a new private key to `FILE` (created with mode 0600,
//! never overwritten) and prints the public key; without `--out` the private key is printed
//! once on stdout, for a secret manager to take. The public key goes in the central
//! configuration (`[tenants.<t>] jit_public_key`), the private key in the tenant agent's
//! (`jit_private_key = "file:FILE"` or `"env:VAR"`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use bus_schema::JitPrivateKey;

/// `shr keys …`.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Make a key pair for a tenant's sealed JIT configs.
    Generate {
        /// Write the private key here (mode 0600; refuses to overwrite). Printed once when absent.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs a `shr keys` command.
pub fn run(cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        KeysCommand::Generate { out } => {
            let key = JitPrivateKey::generate();
            match out {
                Some(path) => {
                    write_private_key(&path, &key)?;
                    println!("private key written to {}", path.display());
                }
                None => println!("jit_private_key (keep secret): {}", key.expose_base64()),
            }
            println!("jit_public_key = \"{}\"", key.public_key());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Writes `key` to a new file that only its owner can read.
pub fn write_private_key(path: &Path, key: &JitPrivateKey) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(file, "{}", key.expose_base64()).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn the_private_key_file_is_owner_only_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acme.key");
        let key = JitPrivateKey::generate();
        write_private_key(&path, &key).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let back = JitPrivateKey::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back.public_key(), key.public_key());
        assert!(write_private_key(&path, &JitPrivateKey::generate()).is_err());
        let still = JitPrivateKey::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(still.public_key(), key.public_key());
    }
}
