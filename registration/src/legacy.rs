//! Import of the predecessor's registration JSON (`WF_SLS_REGS`, Allen portal messages) into
//! this crate's TOML.
//!
//! Input: an array of objects whose keys match case-insensitively and whose values are all
//! strings. Output: TOML that [`Config::parse`] accepts, where every secret is an
//! `env:SHR_<NAME>_<FIELD>` reference (the values never leave the JSON), plus the list of
//! variables to set.
//!
//! Tenants: one per distinct cloud account and placement, i.e. (provider, Alibaba Key and
//! region | Azure subscription, resource group, location and subnet | GCP project, region,
//! VPC and subnet), named `legacy-1`, `legacy-2`… in order of first use. Alibaba vSwitch and
//! security group come from the first item of a tenant; later items that differ get their
//! own `defaults.network`. Legacy fields with no equivalent (Size, ImageVersion, named
//! runner groups, Log Analytics) become comments; secrets among them are dropped.

use std::{collections::BTreeMap, fmt::Write as _};

use serde_json::Value;

use crate::{
    Config, ConfigErrors, ScopeKind, SettingsRegistry,
    config::{DEFAULT_LABEL, scope_from_url},
    error::Collector,
    labels::{Label, parse_label},
    syntax,
};

/// The converted configuration.
#[derive(Debug, Clone)]
pub struct LegacyImport {
    /// TOML text accepted by [`Config::parse`]; contains no secret value.
    pub toml: String,
    /// `(variable name, what it must hold)` for every `env:` reference in `toml`.
    pub env_vars: Vec<(String, String)>,
}

const KEYS: &[&str] = &[
    "Type",
    "Name",
    "Url",
    "Repos",
    "Size",
    "Cpu",
    "Memory",
    "Labels",
    "ChargeLabels",
    "RunnerGroup",
    "runner_group",
    "UserId",
    "Pat",
    "Key",
    "Secret",
    "Region",
    "SecGpId",
    "VSwitchId",
    "PullInterval",
    "ImageVersion",
    "CloudProvider",
    "ArmClientId",
    "ArmClientSecret",
    "ArmSubscriptionId",
    "ArmTenantId",
    "ArmEnvironment",
    "ArmRPRegistration",
    "ArmResourceGroupName",
    "ArmSubnetId",
    "ArmLogAnaWorkspaceId",
    "ArmLogAnaWorkspaceKey",
    "AciLocation",
    "AciSku",
    "AciNetworkType",
    "AciSubnetIds",
    "GcpCredential",
    "GcpProject",
    "GcpRegion",
    "GcpSA",
    "GcpApikey",
    "GcpDind",
    "GcpVpc",
    "GcpSubnet",
];

/// One legacy item's fields, by canonical key.
struct Item<'a> {
    index: usize,
    fields: BTreeMap<&'static str, &'a str>,
}

impl Item<'_> {
    fn get(&self, key: &str) -> &str {
        self.fields.get(key).map_or("", |v| v.trim())
    }

    fn at(&self, key: &str) -> String {
        match self
            .fields
            .get("Name")
            .map(|n| n.trim())
            .filter(|n| !n.is_empty())
        {
            Some(name) => format!("[{}]({name}).{key}", self.index),
            None => format!("[{}].{key}", self.index),
        }
    }

    fn list(&self, key: &str) -> Vec<String> {
        self.get(key)
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn required(&self, c: &mut Collector, key: &str) -> String {
        let v = self.get(key);
        if v.is_empty() {
            c.push(self.at(key), "required");
        }
        v.to_owned()
    }
}

/// The cloud side of one item: its tenant key and the TOML of its provider section.
struct Cloud {
    key: String,
    kind: &'static str,
    section: Vec<(&'static str, String)>,
    secret: (&'static str, &'static str, String),
    dind: bool,
}

/// Converts the predecessor's registration JSON; `file` names it in errors. The result is
/// checked with [`Config::parse`], so `registry` must know the clouds it writes sections for.
pub fn import_legacy(
    json_text: &str,
    file: &str,
    registry: &dyn SettingsRegistry,
) -> Result<LegacyImport, ConfigErrors> {
    let mut c = Collector::new(file);
    let value: Value = match serde_json::from_str(json_text) {
        Ok(v) => v,
        Err(e) => {
            c.push("(document)", format!("not JSON: {e}"));
            return Err(c.into_errors());
        }
    };
    let Some(array) = value.as_array() else {
        c.push("(document)", "expected an array of registration objects");
        return Err(c.into_errors());
    };
    let items: Vec<Item> = array
        .iter()
        .enumerate()
        .filter_map(|(i, v)| item(&mut c, i, v))
        .collect();
    if array.is_empty() {
        c.push("(document)", "no registrations");
    }
    let mut out = Output::default();
    for item in &items {
        convert(&mut c, &mut out, item);
    }
    if !c.is_empty() {
        return Err(c.into_errors());
    }
    let toml = out.render(file);
    Config::parse(&toml, &format!("{file} (converted)"), registry)?;
    Ok(LegacyImport {
        toml,
        env_vars: out.env_vars,
    })
}

fn item<'a>(c: &mut Collector, index: usize, value: &'a Value) -> Option<Item<'a>> {
    let Some(object) = value.as_object() else {
        c.push(format!("[{index}]"), "expected an object");
        return None;
    };
    let mut item = Item {
        index,
        fields: BTreeMap::new(),
    };
    for (key, value) in object {
        let canonical = KEYS.iter().find(|k| k.eq_ignore_ascii_case(key)).copied();
        let canonical = canonical.map(|k| {
            if k == "runner_group" {
                "RunnerGroup"
            } else {
                k
            }
        });
        match (canonical, value.as_str()) {
            (None, _) => c.push(format!("[{index}].{key}"), "unknown field"),
            (Some(_), None) => c.push(format!("[{index}].{key}"), "must be a string"),
            (Some(k), Some(v)) => {
                if item.fields.insert(k, v).is_some() {
                    c.push(
                        format!("[{index}].{key}"),
                        format!("given twice (as {k} in another case)"),
                    );
                }
            }
        }
    }
    Some(item)
}

#[derive(Default)]
struct Output {
    tenants: Vec<TenantOut>,
    registrations: Vec<String>,
    names: Vec<String>,
    env_vars: Vec<(String, String)>,
    webhook: bool,
}

struct TenantOut {
    key: String,
    name: String,
    kind: &'static str,
    section: Vec<(&'static str, String)>,
    dind: bool,
}

fn q(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn q_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| q(s)).collect();
    format!("[{}]", quoted.join(", "))
}

fn env_name(owner: &str, field: &str) -> String {
    format!(
        "SHR_{}_{field}",
        owner.to_ascii_uppercase().replace('-', "_")
    )
}

fn convert(c: &mut Collector, out: &mut Output, it: &Item) {
    let scope = match it.get("Type").to_ascii_lowercase().as_str() {
        "org" => Some(ScopeKind::Org),
        "repo" => Some(ScopeKind::Repo),
        "enterprise" => Some(ScopeKind::Enterprise),
        _ => {
            c.push(it.at("Type"), "must be Org, Repo or Enterprise");
            None
        }
    };
    let name = it.required(c, "Name");
    let url = it.required(c, "Url");
    let web = scope
        .filter(|_| !url.is_empty() && !name.is_empty())
        .and_then(|scope| {
            let trimmed = url.trim_end_matches('/');
            let bare =
                url::Url::parse(trimmed).is_ok_and(|u| u.path() == "/" || u.path().is_empty());
            let full = match (scope, bare) {
                (ScopeKind::Org, true) => format!("{trimmed}/{name}"),
                (ScopeKind::Enterprise, true) => format!("{trimmed}/enterprises/{name}"),
                _ => trimmed.to_owned(),
            };
            c.check(it.at("Url"), scope_from_url(scope, &full).map(|_| full))
        });
    let mut lines: Vec<String> = Vec::new();
    let mut defaults: Vec<String> = Vec::new();
    for (key, field) in [("Cpu", "cpu"), ("Memory", "memory")] {
        let v = it.get(key);
        if !v.is_empty()
            && let Some(n) = c.check(it.at(key), syntax::decimal_thousandths(v))
        {
            defaults.push(format!("{field} = {}", n as f64 / 1000.0));
        }
    }
    let size = it.get("Size");
    if !size.is_empty()
        && c.check(
            it.at("Size"),
            size.parse::<u32>()
                .map_err(|_| format!("`{size}` is not a whole number")),
        )
        .is_some()
    {
        lines.push(format!("# legacy Size = {size} (pool size) not imported: runners are made per job; limits.min_idle keeps warm ones"));
    }
    let image = it.get("ImageVersion");
    if !image.is_empty()
        && c.check(it.at("ImageVersion"), syntax::image_tag(image))
            .is_some()
    {
        lines.push(format!("# legacy ImageVersion = {image}: the legacy image is not compatible; set defaults.image if needed"));
    }
    let labels = it.list("Labels");
    for l in &labels {
        if !matches!(parse_label(l), Label::Plain(_)) {
            c.push(
                it.at("Labels"),
                format!("`{l}` is generic, dynamic or invalid, not a runner label"),
            );
        }
    }
    let charge = it.list("ChargeLabels");
    for l in &charge {
        c.check(it.at("ChargeLabels"), syntax::charge_label(l));
    }
    match it.get("RunnerGroup") {
        "" => {}
        g if g.eq_ignore_ascii_case("default") => {}
        g if g.bytes().all(|b| b.is_ascii_digit()) => {
            defaults.push(format!("runner_group_id = {g}"))
        }
        g => lines.push(format!(
            "# legacy RunnerGroup = {g}: set defaults.runner_group_id to that group's id"
        )),
    }
    let interval = match it.get("PullInterval") {
        "" => None,
        v => c.check(
            it.at("PullInterval"),
            v.parse::<u64>()
                .map_err(|_| format!("`{v}` is not a whole number of seconds")),
        ),
    };
    let (detection, interval) = match interval {
        Some(s) if s >= 300 => ("webhook+poll", s.min(3600)),
        Some(s) => ("poll", s.max(5)),
        None => ("poll", 30),
    };
    let dind = match it.get("GcpDind").to_ascii_lowercase().as_str() {
        "" | "false" => false,
        "true" => true,
        _ => {
            c.push(it.at("GcpDind"), "must be true or false");
            false
        }
    };
    let cloud = cloud(c, it, dind);
    for (key, what) in [
        ("ArmLogAnaWorkspaceKey", "Log Analytics"),
        ("GcpApikey", "GCP API key"),
        ("AciSku", "ACI SKU"),
        ("AciNetworkType", "ACI network type"),
    ] {
        if !it.get(key).is_empty() {
            lines.push(format!("# legacy {key} ({what}) not imported"));
        }
    }
    let (Some(scope), Some(web), Some(cloud)) = (scope, web, cloud) else {
        return;
    };
    let reg_name = unique_name(&mut out.names, &name);
    let tenant = tenant_for(out, &cloud, it);
    if let (Some(t), "alibaba-eci") = (out.tenants.iter().find(|t| t.name == tenant), cloud.kind) {
        let differs = |k: &str, v: &str| t.section.iter().any(|(sk, sv)| *sk == k && *sv != q(v));
        let (vsw, sg) = (it.get("VSwitchId"), it.get("SecGpId"));
        if differs("vswitch_id", vsw) || differs("security_group_id", sg) {
            defaults.push(format!(
                "network = {{ vswitch = {}, security_group = {} }}",
                q(vsw),
                q(sg)
            ));
        }
    }
    let pat_var = env_name(&reg_name, "PAT");
    out.env_vars.push((
        pat_var.clone(),
        format!("GitHub PAT for {web} (legacy item {} `Pat`)", it.index),
    ));
    if detection != "poll" && !out.webhook {
        out.webhook = true;
        out.env_vars.push((
            "SHR_WEBHOOK_SECRET".into(),
            "webhook secret, also set on the GitHub webhook (legacy deliveries were unsigned)"
                .into(),
        ));
    }
    let scope = match scope {
        ScopeKind::Org => "org",
        ScopeKind::Repo => "repo",
        ScopeKind::Enterprise => "enterprise",
    };
    let mut r = String::new();
    let _ = writeln!(
        r,
        "[[registrations]]\n# legacy item {} ({} {name})",
        it.index,
        it.get("Type")
    );
    for l in &lines {
        let _ = writeln!(r, "{l}");
    }
    let _ = writeln!(
        r,
        "name = {}\ntenant = {}\nscope = {}\nurl = {}",
        q(&reg_name),
        q(&tenant),
        q(scope),
        q(&web)
    );
    let repos = it.list("Repos");
    if scope == "org" && !repos.is_empty() {
        let _ = writeln!(r, "repos = {}", q_list(&repos));
    }
    if !labels.is_empty() {
        // The predecessor matched `serverless-hosted-runner` plus these: add, never replace.
        let mut all = vec![DEFAULT_LABEL.to_owned()];
        all.extend(labels.iter().filter(|l| *l != DEFAULT_LABEL).cloned());
        let _ = writeln!(r, "labels = {}", q_list(&all));
    }
    let _ = writeln!(r, "charge_labels = {}", q_list(&charge));
    let _ = writeln!(
        r,
        "detection = {}\npoll_interval_secs = {interval}",
        q(detection)
    );
    let _ = writeln!(r, "auth = {{ pat = {} }}", q(&format!("env:{pat_var}")));
    if !defaults.is_empty() {
        let _ = writeln!(r, "[registrations.defaults]\n{}", defaults.join("\n"));
    }
    out.registrations.push(r);
}

fn cloud(c: &mut Collector, it: &Item, dind: bool) -> Option<Cloud> {
    let provider = it.get("CloudProvider").to_ascii_lowercase();
    let errors_before = c.len();
    let cloud = match provider.as_str() {
        "" | "ali" | "alibaba" | "alicloud" | "aliyun" | "eci" => {
            let key = it.required(c, "Key");
            let region = it.required(c, "Region");
            let vsw = it.get("VSwitchId");
            let sg = it.get("SecGpId");
            c.check(it.at("VSwitchId"), syntax::alibaba_id(vsw, "vsw-"));
            c.check(it.at("SecGpId"), syntax::alibaba_id(sg, "sg-"));
            Cloud {
                key: format!("alibaba-eci|{key}|{region}"),
                kind: "alibaba-eci",
                section: vec![
                    ("region", q(&region)),
                    ("access_key_id", q(&key)),
                    ("vswitch_id", q(vsw)),
                    ("security_group_id", q(sg)),
                ],
                secret: (
                    "access_key_secret",
                    "ACCESS_KEY_SECRET",
                    "Alibaba access key secret (legacy `Secret`)".into(),
                ),
                dind: false,
            }
        }
        "azure" | "aci" => {
            let sub = it.required(c, "ArmSubscriptionId");
            let rg = it.required(c, "ArmResourceGroupName");
            let location = [it.get("AciLocation"), it.get("Region")]
                .into_iter()
                .find(|s| !s.is_empty())
                .unwrap_or_default()
                .to_owned();
            if location.is_empty() {
                c.push(it.at("AciLocation"), "required for azure (or Region)");
            }
            let subnet = it
                .list("AciSubnetIds")
                .into_iter()
                .next()
                .unwrap_or_else(|| it.get("ArmSubnetId").to_owned());
            let mut section = vec![
                ("subscription_id", q(&sub)),
                ("resource_group", q(&rg)),
                ("location", q(&location)),
                ("tenant_id", q(&it.required(c, "ArmTenantId"))),
                ("client_id", q(&it.required(c, "ArmClientId"))),
            ];
            if !subnet.is_empty() {
                section.push(("subnet_id", q(&subnet)));
            }
            match it.get("ArmEnvironment").to_ascii_lowercase().as_str() {
                "" | "public" | "azurecloud" => {}
                "china" | "azurechinacloud" => {
                    section.push(("endpoint", q("https://management.chinacloudapi.cn")));
                    section.push(("login_endpoint", q("https://login.chinacloudapi.cn")));
                }
                _ => c.push(it.at("ArmEnvironment"), "must be public or china"),
            }
            Cloud {
                key: format!("azure-aci|{sub}|{rg}|{location}|{subnet}"),
                kind: "azure-aci",
                section,
                secret: (
                    "client_secret",
                    "CLIENT_SECRET",
                    "Azure service principal secret (legacy `ArmClientSecret`)".into(),
                ),
                dind: false,
            }
        }
        "gcp" | "google" | "gcloud" => {
            let project = it.required(c, "GcpProject");
            let region = [it.get("GcpRegion"), it.get("Region")]
                .into_iter()
                .find(|s| !s.is_empty())
                .unwrap_or_default()
                .to_owned();
            if region.is_empty() {
                c.push(it.at("GcpRegion"), "required for gcp (or Region)");
            }
            let (vpc, subnet) = (it.get("GcpVpc"), it.get("GcpSubnet"));
            let kind = if dind { "gcp-batch" } else { "gcp-cloudrun" };
            // The predecessor ran runners as the default compute account, which reads every
            // runner's secret; we require a dedicated one (create it, or change the name).
            let runner_account = format!("shr-runner@{project}.iam.gserviceaccount.com");
            let mut section = vec![
                ("project", q(&project)),
                ("region", q(&region)),
                ("runner_service_account", q(&runner_account)),
            ];
            if !vpc.is_empty() {
                section.push(("network", q(vpc)));
            }
            if !subnet.is_empty() {
                section.push(("subnetwork", q(subnet)));
            }
            Cloud {
                key: format!("{kind}|{project}|{region}|{vpc}|{subnet}"),
                kind,
                section,
                secret: (
                    "service_account_key",
                    "SERVICE_ACCOUNT_KEY",
                    "GCP service-account JSON key (legacy `GcpCredential`, which was base64: decode it)".into(),
                ),
                dind,
            }
        }
        other => {
            c.push(
                it.at("CloudProvider"),
                format!("`{other}` is not ali, azure or gcp"),
            );
            return None;
        }
    };
    (c.len() == errors_before).then_some(cloud)
}

fn tenant_for(out: &mut Output, cloud: &Cloud, it: &Item) -> String {
    if let Some(t) = out.tenants.iter().find(|t| t.key == cloud.key) {
        return t.name.clone();
    }
    let name = format!("legacy-{}", out.tenants.len() + 1);
    let var = env_name(&name, cloud.secret.1);
    out.env_vars.push((
        var.clone(),
        format!(
            "{} for tenant {name} (from legacy item {})",
            cloud.secret.2, it.index
        ),
    ));
    let mut section = cloud.section.clone();
    section.push((cloud.secret.0, q(&format!("env:{var}"))));
    out.tenants.push(TenantOut {
        key: cloud.key.clone(),
        name: name.clone(),
        kind: cloud.kind,
        section,
        dind: cloud.dind,
    });
    name
}

/// A valid, unique registration name derived from a legacy `Name`.
fn unique_name(taken: &mut Vec<String>, legacy: &str) -> String {
    let mut base = String::new();
    for ch in legacy.to_ascii_lowercase().chars() {
        let ch = if ch.is_ascii_alphanumeric() { ch } else { '-' };
        if !(ch == '-' && (base.is_empty() || base.ends_with('-'))) {
            base.push(ch);
        }
    }
    if !base.starts_with(|c: char| c.is_ascii_lowercase()) {
        base.insert_str(0, "r-");
    }
    base.truncate(27);
    let base = base.trim_end_matches('-').to_owned();
    let mut name = base.clone();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    taken.push(name.clone());
    name
}

impl Output {
    fn render(&self, file: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# Imported from {file} by `shr registration import-legacy`."
        );
        let _ = writeln!(
            s,
            "# Secrets are not copied: set these environment variables before `shr run`:"
        );
        for (var, what) in &self.env_vars {
            let _ = writeln!(s, "#   {var}: {what}");
        }
        // Written out, not defaulted: an operator sharing a cloud account between deployments
        // sees it here and must give each its own.
        let _ = writeln!(
            s,
            "\n[controller]\n# Unique per deployment: the sweep deletes only instances carrying it.\nid = \"shr\"\n"
        );
        if self.webhook {
            let _ = writeln!(
                s,
                "# Legacy PullInterval >= 300 meant webhook delivery (event agent): deliveries are\n# now signed; give GitHub the same secret.\n[webhook]\nsecret = \"env:SHR_WEBHOOK_SECRET\"\n"
            );
        }
        for t in &self.tenants {
            let _ = writeln!(s, "[tenants.{}]", t.name);
            let _ = writeln!(s, "[tenants.{}.defaults]\nprovider = {}", t.name, q(t.kind));
            if t.dind {
                let _ = writeln!(s, "dind = true");
            }
            let _ = writeln!(s, "[tenants.{}.providers.{}]", t.name, t.kind);
            for (k, v) in &t.section {
                let _ = writeln!(s, "{k} = {v}");
            }
            let _ = writeln!(s);
        }
        for r in &self.registrations {
            let _ = writeln!(s, "{r}");
        }
        s
    }
}
