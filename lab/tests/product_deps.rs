//! The product and the lab stay apart: `shr`'s normal dependency graph holds no simulator,
//! no lab and no cloud crate with its `sim` feature, while the lab's graph does hold them
//! (so the check cannot pass by reading an empty or wrong graph).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const CLOUDS: [&str; 4] = ["cloud-alibaba", "cloud-aws", "cloud-azure", "cloud-gcp"];

/// `cargo tree -p <package> -e normal`, as package name → enabled features.
fn normal_graph(package: &str) -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = std::process::Command::new(cargo)
        .current_dir(workspace)
        .args(["tree", "-p", package, "-e", "normal", "--prefix", "none"])
        .args(["--format", "{p}|{f}"])
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        // A package seen before ends in " (*)".
        let line = line.trim_end_matches(" (*)");
        let Some((pkg, features)) = line.split_once('|') else {
            continue;
        };
        let name = pkg.split_whitespace().next().unwrap_or_default().to_owned();
        let features = features
            .split(',')
            .filter(|f| !f.is_empty())
            .map(str::to_owned);
        graph.entry(name).or_default().extend(features);
    }
    graph
}

#[test]
fn the_product_links_no_simulator_and_no_lab() {
    let product = normal_graph("shr");
    assert!(product.contains_key("shr"), "{product:?}");
    assert!(
        product.contains_key("actors"),
        "the graph is the product's: {product:?}"
    );
    for lab_only in ["simulators", "shr-lab"] {
        assert!(!product.contains_key(lab_only), "shr depends on {lab_only}");
    }
    for cloud in CLOUDS.iter().chain(&["clouds"]) {
        let features = product
            .get(*cloud)
            .unwrap_or_else(|| panic!("shr links {cloud}"));
        assert!(
            !features.contains("sim"),
            "shr links {cloud} with its simulator"
        );
    }
}

#[test]
fn the_lab_links_every_simulator() {
    let lab = normal_graph("shr-lab");
    assert!(lab.contains_key("shr"), "the lab drives the product");
    assert!(lab.contains_key("simulators"), "{lab:?}");
    for cloud in CLOUDS {
        let features = lab
            .get(cloud)
            .unwrap_or_else(|| panic!("lab links {cloud}"));
        assert!(
            features.contains("sim"),
            "the lab turns on {cloud}'s simulator: {features:?}"
        );
    }
}
