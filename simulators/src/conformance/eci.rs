//! ECI RPC requests against the ECI 2018-08-08 metadata
//! (`vendor/alibaba/eci-2018-08-08.json`).
//!
//! Parameter names are flat: a repeat-list index is a number (`Container.1.Command.2`), which
//! the metadata writes as `N` (`Container.N.Command.N`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use serde::Deserialize;

use super::{Violation, ViolationKind};

const SPEC: &str = include_str!("../../vendor/alibaba/eci-2018-08-08.json");

/// The parameters every RPC call carries (signature and protocol), not described per action.
pub const COMMON: [&str; 10] = [
    "Action",
    "Version",
    "Format",
    "AccessKeyId",
    "Signature",
    "SignatureMethod",
    "SignatureVersion",
    "SignatureNonce",
    "Timestamp",
    "SecurityToken",
];

#[derive(Debug, Deserialize)]
struct File {
    version: String,
    actions: HashMap<String, Action>,
}

#[derive(Debug, Deserialize)]
struct Action {
    parameters: BTreeMap<String, Param>,
}

/// One described parameter.
#[derive(Debug, Clone, Deserialize)]
pub struct Param {
    /// `String`, `Integer`, `Long`, `Float`, `Boolean` or `RepeatList`.
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub r#enum: Option<Vec<String>>,
    #[serde(default, rename = "maxLength")]
    pub max_length: Option<usize>,
}

fn spec() -> &'static File {
    static SPEC_FILE: OnceLock<File> = OnceLock::new();
    SPEC_FILE.get_or_init(|| match serde_json::from_str(SPEC) {
        Ok(file) => file,
        // The file is compiled in and covered by tests; a broken one is a build defect.
        Err(error) => panic!("vendor/alibaba/eci-2018-08-08.json does not parse: {error}"),
    })
}

/// The API version the metadata describes.
pub fn version() -> &'static str {
    &spec().version
}

/// The described parameter `name` (in `N` form) of `action`, if any.
pub fn param(action: &str, name: &str) -> Option<&'static Param> {
    spec().actions.get(action)?.parameters.get(name)
}

/// `Container.1.Command.2` → `Container.N.Command.N`.
pub fn pattern(name: &str) -> String {
    name.split('.')
        .map(|part| {
            if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
                "N"
            } else {
                part
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Checks `params` of a call to `action`. Common parameters ([`COMMON`]) are skipped. An
/// undescribed action is one violation.
pub fn check(action: &str, params: &BTreeMap<String, String>) -> Vec<Violation> {
    let Some(described) = spec().actions.get(action) else {
        return vec![Violation::new(
            "Action",
            ViolationKind::Unknown,
            format!("action {action} is not described"),
        )];
    };
    let mut out = Vec::new();
    // Repeat-list element prefixes seen, e.g. `Container.1.` → `Container.N.`.
    let mut elements: BTreeSet<(String, String)> = BTreeSet::new();
    for (name, value) in params {
        if COMMON.contains(&name.as_str()) {
            continue;
        }
        let pat = pattern(name);
        let parts: Vec<&str> = name.split('.').collect();
        for i in 1..parts.len() {
            if parts[i].bytes().all(|b| b.is_ascii_digit()) {
                let concrete = parts[..=i].join(".") + ".";
                elements.insert((pattern(&concrete), concrete));
            }
        }
        let Some(p) = described.parameters.get(&pat) else {
            out.push(Violation::new(
                name,
                ViolationKind::Unknown,
                format!("{name} is not a parameter of {action}"),
            ));
            continue;
        };
        if let Some(v) = value_problem(p, value) {
            out.push(Violation::new(name, v.0, v.1));
        }
    }
    for (pat, p) in &described.parameters {
        if !p.required {
            continue;
        }
        match pat.rsplit_once(".N.") {
            None if p.ty == "RepeatList" => {
                let prefix = format!("{pat}.");
                if !params.keys().any(|k| k.starts_with(&prefix)) {
                    out.push(Violation::new(
                        pat.as_str(),
                        ViolationKind::Missing,
                        format!("{pat} is required"),
                    ));
                }
            }
            None => {
                if !params.contains_key(pat) {
                    out.push(Violation::new(
                        pat.as_str(),
                        ViolationKind::Missing,
                        format!("{pat} is required"),
                    ));
                }
            }
            Some((parent, field)) => {
                let parent = format!("{parent}.N.");
                for (el_pat, concrete) in &elements {
                    if *el_pat == parent && !params.contains_key(&format!("{concrete}{field}")) {
                        out.push(Violation::new(
                            format!("{concrete}{field}"),
                            ViolationKind::Missing,
                            format!("{concrete}{field} is required"),
                        ));
                    }
                }
            }
        }
    }
    out
}

fn value_problem(p: &Param, value: &str) -> Option<(ViolationKind, String)> {
    let ok = match p.ty.as_str() {
        "Integer" | "Long" => value.parse::<i64>().is_ok(),
        "Float" => value.parse::<f64>().is_ok_and(f64::is_finite),
        "Boolean" => value == "true" || value == "false",
        _ => true,
    };
    if !ok {
        return Some((ViolationKind::WrongType, format!("must be a {}", p.ty)));
    }
    if let Some(allowed) = &p.r#enum
        && !allowed.iter().any(|a| a == value)
    {
        return Some((
            ViolationKind::NotAllowed,
            format!("must be one of {}", allowed.join(", ")),
        ));
    }
    if let Some(max) = p.max_length
        && value.chars().count() > max
    {
        return Some((
            ViolationKind::TooLong,
            format!("longer than {max} characters"),
        ));
    }
    None
}

/// The ECI error for `violations`: (`code`, message), as ECI words them
/// (`MissingParameter` for an absent required one, else `InvalidParameter`).
pub fn vendor_error(violations: &[Violation]) -> Option<(&'static str, String)> {
    let first = violations
        .iter()
        .find(|v| v.kind == ViolationKind::Missing)
        .or_else(|| violations.first())?;
    Some(match first.kind {
        ViolationKind::Missing => (
            "MissingParameter",
            format!(
                "The input parameter \"{}\" that is mandatory for processing this request is not supplied.",
                first.path
            ),
        ),
        _ => (
            "InvalidParameter",
            format!(
                "The specified parameter \"{}\" is not valid: {}",
                first.path, first.message
            ),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn minimal() -> Vec<(&'static str, &'static str)> {
        vec![
            ("RegionId", "cn-shanghai"),
            ("ContainerGroupName", "g1"),
            ("Container.1.Name", "c"),
            ("Container.1.Image", "ubuntu"),
        ]
    }

    #[test]
    fn the_metadata_describes_the_three_actions() {
        assert_eq!(version(), "2018-08-08");
        assert!(
            param(
                "CreateContainerGroup",
                "Container.N.SecurityContextPrivileged"
            )
            .is_some()
        );
        assert!(
            param(
                "CreateContainerGroup",
                "Container.N.SecurityContext.Privileged"
            )
            .is_none()
        );
        assert!(param("DeleteContainerGroup", "ContainerGroupId").is_some());
        assert!(param("DescribeContainerGroups", "NextToken").is_some());
    }

    #[test]
    fn a_minimal_create_passes_and_common_parameters_are_skipped() {
        let mut p = minimal();
        p.push(("Action", "CreateContainerGroup"));
        p.push(("Signature", "x"));
        assert_eq!(check("CreateContainerGroup", &params(&p)), vec![]);
    }

    #[test]
    fn the_nested_privileged_name_is_unknown() {
        let mut p = minimal();
        p.push(("Container.1.SecurityContext.Privileged", "true"));
        let v = check("CreateContainerGroup", &params(&p));
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].kind, ViolationKind::Unknown);
        assert_eq!(vendor_error(&v).map(|e| e.0), Some("InvalidParameter"));
        let mut p = minimal();
        p.push(("Container.1.SecurityContextPrivileged", "true"));
        assert_eq!(check("CreateContainerGroup", &params(&p)), vec![]);
    }

    #[test]
    fn required_types_enums_and_lengths_are_enforced() {
        let p = params(&[
            ("RegionId", "r"),
            ("ContainerGroupName", "g"),
            ("Container.2.Name", "c"),
        ]);
        let v = check("CreateContainerGroup", &p);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].path, "Container.2.Image");
        assert_eq!(vendor_error(&v).map(|e| e.0), Some("MissingParameter"));

        let p = params(&[("RegionId", "r"), ("ContainerGroupName", "g")]);
        assert_eq!(check("CreateContainerGroup", &p)[0].path, "Container");

        let mut p = minimal();
        p.extend([
            ("RestartPolicy", "Sometimes"),
            ("ActiveDeadlineSeconds", "soon"),
            ("Container.1.Cpu", "two"),
            ("ClientToken", "x".repeat(65).leak() as &str),
        ]);
        let kinds: Vec<_> = check("CreateContainerGroup", &params(&p))
            .into_iter()
            .map(|v| (v.path, v.kind))
            .collect();
        assert!(kinds.contains(&("RestartPolicy".into(), ViolationKind::NotAllowed)));
        assert!(kinds.contains(&("ActiveDeadlineSeconds".into(), ViolationKind::WrongType)));
        assert!(kinds.contains(&("Container.1.Cpu".into(), ViolationKind::WrongType)));
        assert!(kinds.contains(&("ClientToken".into(), ViolationKind::TooLong)));
    }

    #[test]
    fn the_documented_sample_request_passes() {
        let sample = include_str!("../../vendor/alibaba/sample-create.txt");
        let p: BTreeMap<String, String> = sample
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(check("CreateContainerGroup", &p), vec![]);
    }
}
