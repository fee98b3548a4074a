//! The three simulated ECI actions and their parameter checks.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash as _, Hasher as _};
use std::sync::Arc;

use axum::http::StatusCode;
use base64::Engine as _;

use super::server::{ApiError, request_id};
use super::{Fields, Group, GroupStatus, Shared, SimGroup, State, launch};
use crate::rules;

const COMMON: &[&str] = &[
    "Action",
    "Format",
    "Version",
    "AccessKeyId",
    "Signature",
    "SignatureMethod",
    "SignatureVersion",
    "SignatureNonce",
    "Timestamp",
];
const VOLUME_TYPES: &[&str] = &[
    "EmptyDirVolume",
    "NFSVolume",
    "ConfigFileVolume",
    "FlexVolume",
    "DiskVolume",
    "HostPathVolume",
];
const MAX_TAGS: usize = 20;
const MAX_LIMIT: usize = 20;

type Params = BTreeMap<String, String>;

pub(super) fn strip_common(mut params: Params) -> Params {
    params.retain(|k, _| !COMMON.contains(&k.as_str()));
    params
}

pub(super) fn next_id(state: &mut State) -> String {
    let n = state.next_id;
    state.next_id += 1;
    format!("eci-sim{n:012x}")
}

fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str, ApiError> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::missing(name))
}

fn number(params: &Params, name: &str) -> Result<Option<f64>, ApiError> {
    params
        .get(name)
        .map(|v| {
            v.parse::<f64>()
                .map_err(|_| ApiError::invalid(name, "not a number"))
        })
        .transpose()
}

/// Indices `N` present as `<prefix>.N.<anything>` (or `<prefix>.N`), in order.
fn indices(params: &Params, prefix: &str) -> BTreeSet<u32> {
    params
        .keys()
        .filter_map(|k| k.strip_prefix(prefix)?.strip_prefix('.'))
        .filter_map(|rest| rest.split('.').next()?.parse().ok())
        .collect()
}

/// `Tag.N.Key`/`Tag.N.Value` pairs.
fn tags(params: &Params) -> Result<BTreeMap<String, String>, ApiError> {
    let mut tags = BTreeMap::new();
    for n in indices(params, "Tag") {
        let key = required(params, &format!("Tag.{n}.Key"))?;
        let value = params
            .get(&format!("Tag.{n}.Value"))
            .cloned()
            .unwrap_or_default();
        if key.chars().count() > 128 || value.chars().count() > 128 {
            return Err(ApiError::invalid(
                &format!("Tag.{n}"),
                "tag keys and values are at most 128 characters",
            ));
        }
        if key.starts_with("aliyun") || key.starts_with("acs:") {
            return Err(ApiError::invalid(
                &format!("Tag.{n}.Key"),
                "must not start with aliyun or acs:",
            ));
        }
        tags.insert(key.to_owned(), value);
    }
    Ok(tags)
}

fn validate_create(shared: &Shared, params: &Params) -> Result<(), ApiError> {
    let region = required(params, "RegionId")?;
    if region != shared.config.region {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidRegionId",
            "The specified region does not exist.",
        ));
    }
    let name = required(params, "ContainerGroupName")?;
    if !rules::valid_group_name(name) {
        return Err(ApiError::invalid(
            "ContainerGroupName",
            "2 to 128 lowercase letters, digits or hyphens, not starting or ending with a hyphen",
        ));
    }
    required(params, "VSwitchId")?;
    required(params, "SecurityGroupId")?;
    if let Some(token) = params.get("ClientToken")
        && (token.len() > 64 || !token.is_ascii())
    {
        return Err(ApiError::invalid(
            "ClientToken",
            "at most 64 ASCII characters",
        ));
    }
    if let Some(policy) = params.get("RestartPolicy")
        && !["Always", "Never", "OnFailure"].contains(&policy.as_str())
    {
        return Err(ApiError::invalid(
            "RestartPolicy",
            "Always, Never or OnFailure",
        ));
    }
    if let Some(secs) = params.get("ActiveDeadlineSeconds")
        && secs.parse::<u64>().is_err()
    {
        return Err(ApiError::invalid("ActiveDeadlineSeconds", "not an integer"));
    }
    match (number(params, "Cpu")?, number(params, "Memory")?) {
        (Some(cpu), Some(memory)) if !rules::spec_allowed(cpu, memory) => {
            return Err(ApiError::invalid(
                "Cpu/Memory",
                &format!("{cpu} vCPU with {memory} GiB is not a supported specification"),
            ));
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(ApiError::invalid(
                "Cpu/Memory",
                "Cpu and Memory must be specified together",
            ));
        }
        _ => {}
    }
    if tags(params)?.len() > MAX_TAGS {
        return Err(ApiError::invalid("Tag", "at most 20 tags"));
    }

    let mut volumes = BTreeSet::new();
    for n in indices(params, "Volume") {
        let vname = required(params, &format!("Volume.{n}.Name"))?;
        let vtype = required(params, &format!("Volume.{n}.Type"))?;
        if !VOLUME_TYPES.contains(&vtype) {
            return Err(ApiError::invalid(
                &format!("Volume.{n}.Type"),
                "unknown volume type",
            ));
        }
        if vtype == "ConfigFileVolume" {
            let prefix = format!("Volume.{n}.ConfigFileVolume.ConfigFileToPath");
            for m in indices(params, &prefix) {
                required(params, &format!("{prefix}.{m}.Path"))?;
                let content = required(params, &format!("{prefix}.{m}.Content"))?;
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(content)
                    .map_err(|_| {
                        ApiError::invalid(&format!("{prefix}.{m}.Content"), "not base64")
                    })?;
                if decoded.len() > 32 * 1024 {
                    return Err(ApiError::invalid(
                        &format!("{prefix}.{m}.Content"),
                        "a configuration file is at most 32 KB",
                    ));
                }
            }
        }
        if vtype == "FlexVolume" {
            required(params, &format!("Volume.{n}.FlexVolume.Driver"))?;
        }
        volumes.insert(vname.to_owned());
    }

    let containers = indices(params, "Container");
    if containers.is_empty() {
        return Err(ApiError::missing("Container.1.Image"));
    }
    for n in containers {
        required(params, &format!("Container.{n}.Image"))?;
        required(params, &format!("Container.{n}.Name"))?;
        number(params, &format!("Container.{n}.Cpu"))?;
        number(params, &format!("Container.{n}.Memory"))?;
        let env = format!("Container.{n}.EnvironmentVar");
        for m in indices(params, &env) {
            let value_name = format!("{env}.{m}.Value");
            required(params, &format!("{env}.{m}.Key"))?;
            if params
                .get(&value_name)
                .is_some_and(|v| v.chars().count() > rules::MAX_ENV_VALUE_CHARS)
            {
                return Err(ApiError::invalid(
                    &value_name,
                    "the value of an environment variable is at most 256 characters",
                ));
            }
        }
        let mounts = format!("Container.{n}.VolumeMount");
        for m in indices(params, &mounts) {
            let mount_name = required(params, &format!("{mounts}.{m}.Name"))?;
            required(params, &format!("{mounts}.{m}.MountPath"))?;
            if !volumes.contains(mount_name) {
                return Err(ApiError::invalid(
                    &format!("{mounts}.{m}.Name"),
                    "no volume with this name",
                ));
            }
        }
    }
    Ok(())
}

fn fingerprint(params: &Params) -> u64 {
    let mut hasher = DefaultHasher::new();
    params.hash(&mut hasher);
    hasher.finish()
}

pub(super) fn create(shared: &Arc<Shared>, params: Params) -> Result<serde_json::Value, ApiError> {
    validate_create(shared, &params)?;
    let print = fingerprint(&params);
    let mut state = shared.state();
    if let Some(token) = params.get("ClientToken")
        && let Some((seen, id)) = state.tokens.get(token)
    {
        return if *seen == print {
            Ok(serde_json::json!({"RequestId": request_id(), "ContainerGroupId": id}))
        } else {
            Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "IdempotentParameterMismatch",
                "Request uses a client token in a previous request but is not identical to that request.",
            ))
        };
    }
    let id = next_id(&mut state);
    if let Some(token) = params.get("ClientToken") {
        state.tokens.insert(token.clone(), (print, id.clone()));
    }
    let snapshot = SimGroup {
        id: id.clone(),
        name: params
            .get("ContainerGroupName")
            .cloned()
            .unwrap_or_default(),
        status: GroupStatus::Pending,
        tags: tags(&params)?,
        fields: Fields(params),
    };
    let (kill, killed) = tokio::sync::oneshot::channel();
    state.created.push(id.clone());
    state.groups.insert(
        id.clone(),
        Group {
            snapshot: snapshot.clone(),
            kill: Some(kill),
        },
    );
    drop(state);
    tokio::spawn(launch::run(shared.clone(), snapshot, killed));
    Ok(serde_json::json!({"RequestId": request_id(), "ContainerGroupId": id}))
}

pub(super) fn delete(shared: &Shared, params: &Params) -> Result<serde_json::Value, ApiError> {
    required(params, "RegionId")?;
    let id = required(params, "ContainerGroupId")?;
    let removed = {
        let mut state = shared.state();
        let removed = state.groups.remove(id);
        if removed.is_some() {
            state.deleted.push(id.to_owned());
        }
        removed
    };
    match removed {
        Some(mut group) => {
            if let Some(kill) = group.kill.take() {
                let _ = kill.send(());
            }
            Ok(serde_json::json!({"RequestId": request_id()}))
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "InvalidContainerGroupId.NotFound",
            "The specified container group does not exist.",
        )),
    }
}

pub(super) fn describe(shared: &Shared, params: &Params) -> Result<serde_json::Value, ApiError> {
    required(params, "RegionId")?;
    let limit = match params.get("Limit") {
        None => MAX_LIMIT,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| ApiError::invalid("Limit", "1 to 20"))?,
    };
    let offset = match params.get("NextToken").filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| ApiError::invalid("NextToken", "not a token this service issued"))?,
    };
    let wanted_tags = tags(params)?;
    let name = params.get("ContainerGroupName");
    let matching: Vec<SimGroup> = shared
        .state()
        .groups
        .values()
        .map(|g| g.snapshot.clone())
        .filter(|g| name.is_none_or(|n| &g.name == n))
        .filter(|g| wanted_tags.iter().all(|(k, v)| g.tags.get(k) == Some(v)))
        .collect();
    let total = matching.len();
    let page: Vec<serde_json::Value> = matching
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|g| {
            serde_json::json!({
                "ContainerGroupId": g.id,
                "ContainerGroupName": g.name,
                "RegionId": shared.config.region,
                "Status": g.status.as_str(),
                "Cpu": g.fields.get("Cpu").and_then(|v| v.parse::<f64>().ok()),
                "Memory": g.fields.get("Memory").and_then(|v| v.parse::<f64>().ok()),
                "Tags": g.tags.iter().map(|(k, v)| serde_json::json!({"Key": k, "Value": v})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let next = if offset + limit < total {
        (offset + limit).to_string()
    } else {
        String::new()
    };
    Ok(serde_json::json!({
        "RequestId": request_id(),
        "TotalCount": total,
        "NextToken": next,
        "ContainerGroups": page,
    }))
}
