//! The HTTP side of the simulator: collects RPC parameters from the query and form body,
//! authenticates like ECI, injects faults, and dispatches by `Action`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;

use super::{Fault, Shared, actions};
use crate::config::API_VERSION;
use crate::signer;

/// An ECI error answer.
#[derive(Debug)]
pub(super) struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
        }
    }

    pub fn missing(name: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "MissingParameter",
            format!(
                "The input parameter \"{name}\" that is mandatory for processing this request is not supplied."
            ),
        )
    }

    pub fn invalid(name: &str, why: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            format!("The specified parameter \"{name}\" is not valid: {why}"),
        )
    }

    fn into_response(self, region: &str) -> Response {
        let body = serde_json::json!({
            "RequestId": request_id(),
            "HostId": format!("eci.{region}.aliyuncs.com"),
            "Code": self.code,
            "Message": self.message,
            "Recommend": format!("https://api.aliyun.com/troubleshoot?q={}", self.code),
        });
        (self.status, axum::Json(body)).into_response()
    }
}

pub(super) fn request_id() -> String {
    uuid::Uuid::new_v4().to_string().to_uppercase()
}

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    RawQuery(query): RawQuery,
    body: String,
) -> Response {
    let region = shared.config.region.clone();
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    let query = query.unwrap_or_default();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes())
        .chain(url::form_urlencoded::parse(body.as_bytes()))
    {
        params.insert(k.into_owned(), v.into_owned());
    }
    let result = match authenticate(&shared, method.as_str(), &params) {
        Ok(()) => serve(&shared, params).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(value) => (StatusCode::OK, axum::Json(value)).into_response(),
        Err(e) => e.into_response(&region),
    }
}

fn authenticate(
    shared: &Shared,
    method: &str,
    params: &BTreeMap<String, String>,
) -> Result<(), ApiError> {
    let config = &shared.config;
    let get = |name: &str| params.get(name).map(String::as_str);
    let incomplete = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "IncompleteSignature",
            "The request signature does not conform to Aliyun standards.",
        )
    };
    let access_key_id = get("AccessKeyId").ok_or_else(|| ApiError::missing("AccessKeyId"))?;
    if access_key_id != config.access_key_id {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "InvalidAccessKeyId.NotFound",
            "Specified access key is not found.",
        ));
    }
    if get("SignatureMethod") != Some("HMAC-SHA1") || get("SignatureVersion") != Some("1.0") {
        return Err(incomplete());
    }
    let signature = get("Signature").ok_or_else(incomplete)?;
    let nonce = get("SignatureNonce").ok_or_else(incomplete)?;
    let timestamp = get("Timestamp").ok_or_else(|| ApiError::missing("Timestamp"))?;
    let signed_at = chrono::NaiveDateTime::parse_from_str(timestamp, "%Y-%m-%dT%H:%M:%SZ")
        .map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidTimeStamp.Format",
                "Specified time stamp or date value is not well formatted.",
            )
        })?
        .and_utc();
    let skew = (chrono::Utc::now() - signed_at).abs();
    if skew.to_std().unwrap_or_default() > config.max_clock_skew {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidTimeStamp.Expired",
            "Specified time stamp or date value is expired.",
        ));
    }
    if !signer::verify(
        method,
        params,
        config.access_key_secret.expose_secret(),
        signature,
    ) {
        // ECI also echoes its string-to-sign; the sim leaves it out because it would carry
        // every parameter value, the JIT config included.
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "SignatureDoesNotMatch",
            "Specified signature is not matched with our calculation.",
        ));
    }
    if !shared.state().nonces.insert(nonce.to_owned()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
        ));
    }
    match get("Version") {
        None => Err(ApiError::missing("Version")),
        Some(API_VERSION) => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidVersion",
            "Specified parameter Version is not valid.",
        )),
    }
}

/// The fault for this call, if one is due.
fn due_fault(shared: &Shared) -> Option<Fault> {
    shared.state().faults.next_fault()
}

async fn serve(
    shared: &Arc<Shared>,
    params: BTreeMap<String, String>,
) -> Result<serde_json::Value, ApiError> {
    let action = params
        .get("Action")
        .cloned()
        .ok_or_else(|| ApiError::missing("Action"))?;
    shared.state().calls.push(action.clone());
    match due_fault(shared) {
        Some(Fault::Throttling) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "Throttling.User",
                "Request was denied due to user flow control.",
            ));
        }
        Some(Fault::ServerError) => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "The request processing has failed due to some unknown error, exception or failure.",
            ));
        }
        Some(Fault::Unavailable) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "The request has failed due to a temporary failure of the server.",
            ));
        }
        Some(Fault::NoStock) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "OperationDenied.NoStock",
                "The resource is out of stock in the specified zone. Please try other types, or choose other regions and zones.",
            ));
        }
        Some(Fault::Slow(delay)) => tokio::time::sleep(delay).await,
        None => {}
    }
    if let Some((code, message)) = simulators::conformance::eci::vendor_error(
        &simulators::conformance::eci::check(&action, &params),
    ) {
        shared.state().conformance_rejections += 1;
        return Err(ApiError::new(StatusCode::BAD_REQUEST, code, message));
    }
    let params = actions::strip_common(params);
    match action.as_str() {
        "CreateContainerGroup" => actions::create(shared, params),
        "DeleteContainerGroup" => actions::delete(shared, &params),
        "DescribeContainerGroups" => actions::describe(shared, &params),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "InvalidAction.NotFound",
            "Specified api is not found, please check your url and method.",
        )),
    }
}
