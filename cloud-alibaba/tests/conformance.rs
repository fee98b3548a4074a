#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The ECI provider's requests held to the ECI 2018-08-08 metadata (bundled in
//! `simulators/vendor/alibaba/`). The simulator refuses a request that departs from it with
//! ECI's `InvalidParameter` / `MissingParameter` and counts the refusals.

mod common;

use cloud_alibaba::{EciProvider, OssConfig};
use common::*;
use providers::Provider;
use simulators::conformance::eci;

#[tokio::test]
async fn every_request_of_a_dind_disk_runner_conforms_to_the_eci_metadata() {
    let sim = sim(sim_config()).await;
    let mut config = provider_config(&sim, SECRET);
    config.oss = Some(OssConfig {
        endpoint: "oss-cn-shanghai-internal.aliyuncs.com".into(),
        ram_role: "shr-oss".into(),
    });
    let provider = EciProvider::new(config).unwrap();
    let mut spec = spec();
    spec.dind = true;
    spec.disk_bucket = Some("cache".into());
    let request = request("runner-c1", spec);
    let params = provider.create_params(&request).unwrap();
    assert_eq!(eci::check("CreateContainerGroup", &params), vec![]);
    assert_eq!(
        params
            .get("Container.1.SecurityContextPrivileged")
            .map(String::as_str),
        Some("true"),
        "the metadata's name for a privileged container"
    );
    provider.create(&request).await.unwrap();
    provider.get("runner-c1").await.unwrap().unwrap();
    assert_eq!(provider.list().await.unwrap().len(), 1);
    provider.delete("runner-c1").await.unwrap();
    assert_eq!(sim.conformance_rejections(), 0);
    assert!(sim.calls().contains(&"DeleteContainerGroup".to_owned()));
}

#[test]
fn the_nested_privileged_spelling_is_not_an_eci_parameter() {
    assert!(
        eci::param(
            "CreateContainerGroup",
            "Container.N.SecurityContextPrivileged"
        )
        .is_some()
    );
    assert!(
        eci::param(
            "CreateContainerGroup",
            "Container.N.SecurityContext.Privileged"
        )
        .is_none()
    );
}
