//! The JIT config the simulator hands out, in the actions/runner format.
//!
//! `encoded_jit_config` is base64 of a JSON object mapping the file names `.runner`,
//! `.credentials` and `.credentials_rsaparams` to base64 of each file's content. `.runner` points
//! `serverUrl` at the simulator; `.credentials` carries the per-runner `clientId` that the fake
//! runner presents when it opens its session (the real runner signs with the RSA key instead;
//! the key material here is random filler in the real field layout).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;

use crate::runner::{CredentialData, Credentials, RsaParams, RunnerSettings};

/// What a JIT config is made from.
#[derive(Debug)]
pub(crate) struct JitInput<'a> {
    pub(crate) runner_id: u64,
    pub(crate) runner_name: &'a str,
    pub(crate) runner_group_id: u64,
    /// The simulator's base URL, without a trailing slash.
    pub(crate) server_url: &'a str,
    /// The scope's html URL, e.g. `https://github.com/acme`.
    pub(crate) github_url: String,
    pub(crate) work_folder: &'a str,
    pub(crate) credential: &'a str,
}

/// Encodes the three runner files.
pub(crate) fn encode(input: &JitInput<'_>) -> Result<String, serde_json::Error> {
    let runner = RunnerSettings {
        agent_id: input.runner_id,
        agent_name: input.runner_name.to_owned(),
        pool_id: input.runner_group_id,
        pool_name: None,
        server_url: input.server_url.to_owned(),
        git_hub_url: input.github_url.clone(),
        work_folder: input.work_folder.to_owned(),
        ephemeral: true,
        disable_update: false,
        use_v2_flow: false,
        server_url_v2: None,
    };
    let credentials = Credentials {
        scheme: "OAuth".into(),
        data: CredentialData {
            client_id: input.credential.to_owned(),
            authorization_url: format!("{}/_runner/oauth2/token", input.server_url),
            require_fips_cryptography: "True".into(),
        },
    };
    let filler = |len: usize| {
        let mut bytes = vec![0u8; len];
        rand::rng().fill_bytes(&mut bytes);
        STANDARD.encode(bytes)
    };
    let rsa = RsaParams {
        d: filler(256),
        dp: filler(128),
        dq: filler(128),
        exponent: STANDARD.encode([1u8, 0, 1]),
        inverse_q: filler(128),
        modulus: filler(256),
        p: filler(128),
        q: filler(128),
    };
    let file = |json: Vec<u8>| STANDARD.encode(json);
    let files = serde_json::json!({
        ".runner": file(serde_json::to_vec(&runner)?),
        ".credentials": file(serde_json::to_vec(&credentials)?),
        ".credentials_rsaparams": file(serde_json::to_vec(&rsa)?),
    });
    Ok(STANDARD.encode(serde_json::to_vec(&files)?))
}
