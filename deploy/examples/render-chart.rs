//! Prints the Helm chart rendered without Helm, for review:
//! `cargo run -p deploy --example render-chart [-- my-values.yaml [RELEASE]]`.
//! The optional values file is merged over the chart's values.yaml, as `helm -f` does.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = (|| {
        let mut values = deploy::chart::default_values()?;
        if let Some(path) = args.first() {
            let docs = deploy::load_yaml(std::path::Path::new(path))?;
            if let Some(overlay) = docs.first() {
                deploy::chart::merge(&mut values, &deploy::to_json(overlay));
            }
        }
        let release = args.get(1).map_or("shr", String::as_str);
        deploy::chart::render_text(&values, release)
    })();
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
