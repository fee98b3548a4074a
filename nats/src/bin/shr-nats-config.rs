//! `shr-nats-config --out <dir> --tenant <name> [--tenant <name> …] [--node HOST:CLIENT:CLUSTER …]
//! [--store-base DIR]`: writes the NATS server include (`accounts.conf`) and one nkey seed file
//! per identity (central, webhook, one agent per tenant). Existing seeds are kept; delete one to
//! rotate it. With `--node` (once per cluster node), it also writes `node-N.conf` for each node:
//! routes to every node, a unique server name, and `include accounts.conf`, so every node has
//! the same identities and grants. See `nats/conf/README.md`.

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: shr-nats-config --out <dir> --tenant <name> [--tenant <name> …] \
                     [--node HOST:CLIENT_PORT:CLUSTER_PORT …] [--store-base <dir>]";

fn main() -> ExitCode {
    let mut out = None;
    let mut tenants = Vec::new();
    let mut nodes = Vec::new();
    let mut store_base = PathBuf::from("/var/lib/shr");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--out", Some(dir)) => out = Some(PathBuf::from(dir)),
            ("--tenant", Some(tenant)) => tenants.push(tenant),
            ("--store-base", Some(dir)) => store_base = PathBuf::from(dir),
            ("--node", Some(node)) => match node.parse::<shr_nats::cluster::ClusterNode>() {
                Ok(node) => nodes.push(node),
                Err(reason) => {
                    eprintln!("shr-nats-config: --node: {reason}");
                    return ExitCode::from(64);
                }
            },
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(64);
            }
        }
    }
    let Some(out) = out else {
        eprintln!("shr-nats-config: --out <dir> is required");
        return ExitCode::from(64);
    };
    let nodes = shr_nats::cluster::numbered(nodes, &store_base);
    let written = shr_nats::security::generate(&out, &tenants).and_then(|roles| {
        let confs = shr_nats::cluster::write_nodes(&out, &nodes, true)?;
        Ok((roles, confs))
    });
    match written {
        Ok((roles, confs)) => {
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
            for conf in confs {
                println!("cluster node: {}", conf.display());
            }
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
