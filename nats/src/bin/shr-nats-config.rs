//! `shr-nats-config --out <dir> --tenant <name> [--tenant <name> …]`: writes the NATS server
//! include (`accounts.conf`) and one nkey seed file per identity (central, webhook, one agent
//! per tenant). Existing seeds are kept; delete one to rotate it. See `nats/conf/README.md`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut out = None;
    let mut tenants = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--out", Some(dir)) => out = Some(PathBuf::from(dir)),
            ("--tenant", Some(tenant)) => tenants.push(tenant),
            _ => {
                eprintln!("usage: shr-nats-config --out <dir> --tenant <name> [--tenant <name> …]");
                return ExitCode::from(64);
            }
        }
    }
    let Some(out) = out else {
        eprintln!("shr-nats-config: --out <dir> is required");
        return ExitCode::from(64);
    };
    match shr_nats::security::generate(&out, &tenants) {
        Ok(roles) => {
            for role in roles {
                let seed = shr_nats::security::seed_path(&out, &role);
                println!(
                    "{:<20} inbox {:<20} seed {}",
                    role.name(),
                    role.inbox_prefix(),
                    seed.display()
                );
            }
            println!("server include: {}", out.join("accounts.conf").display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("shr-nats-config: {error}");
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::from(1)
        }
    }
}
