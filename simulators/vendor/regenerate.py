#!/usr/bin/env python3
"""Regenerates the vendor API extracts under simulators/vendor/ that the conformance checks use.

Each extract keeps only the operations and schemas the cloud providers call, with
descriptions dropped. See the README in each vendor folder for source, version and license.

Usage:
  regenerate.py alibaba --meta DIR --sdk WHEEL   # DIR: a checkout of aliyun/aliyun-openapi-meta
  regenerate.py azure --specs DIR                # DIR: a checkout of Azure/azure-rest-api-specs
  regenerate.py google --wheel WHEEL             # google-api-python-client wheel

Getting the inputs:
  pip download alibabacloud_eci20180808 --no-deps -d /tmp/v
  pip download google-api-python-client --no-deps -d /tmp/v
  git clone --depth 1 https://github.com/aliyun/aliyun-openapi-meta /tmp/v/meta
  git clone --depth 1 --filter=blob:none --sparse https://github.com/Azure/azure-rest-api-specs /tmp/v/specs
  (cd /tmp/v/specs && git sparse-checkout set specification/containerinstance)
"""

import argparse
import ast
import json
import re
import sys
import types
import typing
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

# --------------------------------------------------------------------------- Alibaba ECI

ECI_ACTIONS = ["CreateContainerGroup", "DeleteContainerGroup", "DescribeContainerGroups"]
# Parameters whose description lists "Valid values:" that the API enforces as a closed set.
# (Volume.N.Type is left open: the SDK comment for it lists the HostPath types by mistake.)
ECI_ENUMS = {"RestartPolicy", "Container.N.ImagePullPolicy"}
ECI_PY_TYPES = {str: "String", int: "Integer", bool: "Boolean", float: "Float"}


def eci_sdk_models(wheel):
    """Loads the SDK's models.py with a stub TeaModel base; returns (module, source)."""
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith("/models.py"))
        source = z.read(name).decode()
    tea = types.ModuleType("Tea")
    tea_model = types.ModuleType("Tea.model")

    class TeaModel:
        def to_map(self):
            return None

    tea_model.TeaModel = TeaModel
    sys.modules["Tea"] = tea
    sys.modules["Tea.model"] = tea_model
    module = types.ModuleType("eci_models")
    exec(compile(source, "models.py", "exec"), module.__dict__)
    return module, source


def eci_class_fields(cls, source):
    """(serialized name, python type, comment) of each field of an SDK model class."""
    tree = ast.parse(source)
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls.__name__)
    text = ast.get_source_segment(source, node)
    to_map = text[text.index("def to_map"):text.index("def from_map")]
    names = {}
    for attr, key in re.findall(r"if self\.(\w+) is not None:\s*\n\s*result\['([^']+)'\]", to_map):
        names[attr] = key
    for key, attr in re.findall(r"result\['([^']+)'\] = \[\]\s*\n\s*if self\.(\w+) is not None:", to_map):
        names[attr] = key
    comments = {}
    init = text[text.index("def __init__"):text.index("def validate")]
    pending = []
    for line in init.splitlines():
        s = line.strip()
        if s.startswith("#"):
            pending.append(s.lstrip("# "))
        elif s.startswith("self."):
            comments[s.split("=")[0].strip()[5:]] = "\n".join(pending)
            pending = []
    hints = typing.get_type_hints(cls.__init__)
    out = []
    for attr, hint in hints.items():
        if attr in names:
            out.append((names[attr], hint, comments.get(attr, "")))
    return out


def eci_flatten(cls, source, prefix, out, module):
    for key, hint, comment in eci_class_fields(cls, source):
        name = prefix + key
        origin = typing.get_origin(hint)
        if origin in (list, typing.List):
            (inner,) = typing.get_args(hint)
            out[name] = {"type": "RepeatList", "doc": comment}
            if isinstance(inner, type) and inner in ECI_PY_TYPES:
                out[name + ".N"] = {"type": ECI_PY_TYPES[inner], "doc": ""}
            else:
                eci_flatten(inner, source, name + ".N.", out, module)
        elif hint in ECI_PY_TYPES:
            out[name] = {"type": ECI_PY_TYPES[hint], "doc": comment}
        else:
            eci_flatten(hint, source, name + ".", out, module)


def eci_meta_params(meta_file):
    data = json.loads(Path(meta_file).read_text())
    out = {}

    def walk(params, prefix, parent_required):
        for p in params:
            name = prefix + p["name"]
            out[name] = {"type": p["type"], "required": bool(p.get("required")),
                         "doc": p.get("description", "")}
            sub = p.get("sub_parameters")
            if sub:
                walk(sub, name + (".N." if p["type"] == "RepeatList" else "."), p.get("required"))

    walk(data["parameters"], "", True)
    return out


def valid_values(doc):
    m = re.search(r"Valid values:(.*?)(?:\n\n[^*\s]|$)", doc, re.S)
    if not m:
        return None
    values = re.findall(r"^\*\s+\**([A-Za-z][\w.-]*)\**\s*(?::|$)", m.group(1), re.M)
    return values or None


def max_length(doc):
    m = re.search(r"cannot exceed (\d+) characters|up to (\d+) characters", doc)
    return int(next(g for g in m.groups() if g)) if m else None


def alibaba(args):
    module, source = eci_sdk_models(args.sdk)
    actions = {}
    for action in ECI_ACTIONS:
        meta = eci_meta_params(Path(args.meta) / "en-US" / "eci" / f"{action}.json")
        sdk = {}
        eci_flatten(getattr(module, f"{action}Request"), source, "", sdk, module)
        params = {}
        for name in sorted(set(meta) | set(sdk)):
            m, s = meta.get(name, {}), sdk.get(name, {})
            if name not in meta and not any(name.startswith(k + ".") for k in meta):
                # The SDK knows a parameter the metadata lacks entirely: keep the metadata's word.
                continue
            entry = {"type": m.get("type") or s.get("type"), "required": m.get("required", False)}
            doc = m.get("doc") or s.get("doc") or ""
            if name in ECI_ENUMS and valid_values(doc):
                entry["enum"] = valid_values(doc)
            if max_length(doc):
                entry["maxLength"] = max_length(doc)
            params[name] = entry
        actions[action] = {"parameters": params}
    out = {
        "product": "eci",
        "version": "2018-08-08",
        "source": "aliyun/aliyun-openapi-meta en-US/eci (types, required, descriptions) + "
                  "alibabacloud_eci20180808 SDK models (names nested inside repeat lists)",
        "actions": actions,
    }
    write(HERE / "alibaba" / "eci-2018-08-08.json", out)

# --------------------------------------------------------------------------- Azure

AZURE_VERSION = "2025-09-01"
AZURE_EXAMPLES = ["ContainerGroupsCreateOrUpdate.json", "ContainerGroupsGet_Succeeded.json",
                  "ContainerGroupsList.json",
                  "ContainerGroupsDelete.json"]
# Definitions the provider's requests and the sim's answers use; others referenced from them
# are kept as open objects (any content accepted).
AZURE_DEFINITIONS = [
    "Resource", "ContainerGroup", "ContainerGroupProperties", "ListResultContainerGroup",
    "ListResultContainerGroupProperties", "ContainerGroupListResult", "Container",
    "ContainerProperties", "EnvironmentVariable", "ResourceRequirements", "ResourceRequests",
    "ResourceLimits", "GpuResource", "SecurityContextDefinition",
    "SecurityContextCapabilitiesDefinition", "Volume", "AzureFileVolume", "EmptyDirVolume",
    "SecretVolume", "SecretReferenceVolume", "GitRepoVolume", "VolumeMount",
    "ContainerGroupSubnetId", "ImageRegistryCredential", "IpAddress", "Port", "ContainerPort",
    "ContainerGroupSku", "DnsConfiguration", "ContainerGroupDiagnostics", "LogAnalytics",
    "ContainerGroupIdentity", "UserAssignedIdentities", "CloudError", "CloudErrorBody",
]


def strip_docs(node):
    if isinstance(node, dict):
        return {k: strip_docs(v) for k, v in node.items()
                if k not in ("description", "x-ms-identifiers", "x-ms-examples", "x-ms-enum")}
    if isinstance(node, list):
        return [strip_docs(v) for v in node]
    return node


def open_refs(node, keep):
    """Replaces $refs to definitions not kept with an open object."""
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        if ref.startswith("#/definitions/") and ref.split("/")[-1] not in keep:
            return {"type": "object", "x-shr-open": True}
        return {k: open_refs(v, keep) for k, v in node.items()}
    if isinstance(node, list):
        return [open_refs(v, keep) for v in node]
    return node


def azure(args):
    base = (Path(args.specs) / "specification/containerinstance/resource-manager/"
            "Microsoft.ContainerInstance/ContainerInstance/stable" / AZURE_VERSION)
    spec = json.loads((base / "containerInstance.json").read_text())
    keep = set(AZURE_DEFINITIONS)
    defs = {k: open_refs(strip_docs(spec["definitions"][k]), keep) for k in AZURE_DEFINITIONS}
    write(HERE / "azure" / f"containerinstance-{AZURE_VERSION}.json", {
        "swagger": "2.0",
        "info": spec["info"],
        "source": f"Azure/azure-rest-api-specs {base.relative_to(args.specs)}/containerInstance.json",
        "definitions": defs,
    })
    for name in AZURE_EXAMPLES:
        src = base / "examples" / name
        if src.exists():
            write(HERE / "azure" / "examples" / name, json.loads(src.read_text()))

# --------------------------------------------------------------------------- Google

GOOGLE = {
    "run.v2": ["GoogleCloudRunV2Job"],
    "batch.v1": ["Job"],
    "secretmanager.v1": ["Secret", "AddSecretVersionRequest"],
}
GOOGLE_METHODS = {
    "run.v2": ["projects.locations.jobs.create", "projects.locations.jobs.get",
               "projects.locations.jobs.list", "projects.locations.jobs.delete",
               "projects.locations.jobs.run", "projects.locations.operations.get"],
    "batch.v1": ["projects.locations.jobs.create", "projects.locations.jobs.get",
                 "projects.locations.jobs.list", "projects.locations.jobs.delete",
                 "projects.locations.operations.get"],
    "secretmanager.v1": ["projects.secrets.create", "projects.secrets.addVersion",
                         "projects.secrets.delete", "projects.secrets.get"],
}


# Closed value sets the discovery document states only in prose: (schema, property, key) and
# the sentence they come from, checked below so a changed description fails regeneration.
GOOGLE_VALUE_SETS = {
    "run.v2": [("GoogleCloudRunV2ResourceRequirements", "limits", "cpu",
                "The only supported values for CPU are '1', '2', '4', and '8'.", ["1", "2", "4", "8"])],
}


def value_sets(doc):
    out = {}
    for schema, prop, key, sentence, values in GOOGLE_VALUE_SETS.get(doc["id"].replace(":", "."), []):
        text = doc["schemas"][schema]["properties"][prop].get("description", "")
        if sentence not in text:
            sys.exit(f"{doc['id']}: {schema}.{prop} no longer says: {sentence}")
        out[f"{schema}.{prop}.{key}"] = {"values": values, "quote": sentence}
    return out


def google_method(doc, path):
    node = doc
    parts = path.split(".")
    for part in parts[:-1]:
        node = node["resources"][part]
    return node["methods"][parts[-1]]


def google(args):
    with zipfile.ZipFile(args.wheel) as z:
        for api, roots in GOOGLE.items():
            doc = json.loads(z.read(f"googleapiclient/discovery_cache/documents/{api}.json"))
            methods = {}
            for path in GOOGLE_METHODS[api]:
                m = google_method(doc, path)
                methods[path] = strip_docs({k: m[k] for k in
                                            ("httpMethod", "path", "parameters", "request", "response")
                                            if k in m})
            wanted, todo = set(), list(roots) + [m["response"]["$ref"] for m in methods.values()
                                                 if "response" in m]
            todo += [m["request"]["$ref"] for m in methods.values() if "request" in m]
            while todo:
                name = todo.pop()
                if name in wanted:
                    continue
                wanted.add(name)
                todo += re.findall(r'"\$ref": "([^"]+)"', json.dumps(doc["schemas"][name]))
            write(HERE / "google" / f"{api}.json", {
                "id": doc["id"], "revision": doc["revision"], "version": doc["version"],
                "source": f"google-api-python-client {Path(args.wheel).name}",
                "methods": methods,
                "schemas": {k: strip_docs(doc["schemas"][k]) for k in sorted(wanted)},
                "x-shr-value-sets": value_sets(doc),
            })


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {path.relative_to(HERE)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="vendor", required=True)
    a = sub.add_parser("alibaba")
    a.add_argument("--meta", required=True)
    a.add_argument("--sdk", required=True)
    z = sub.add_parser("azure")
    z.add_argument("--specs", required=True)
    g = sub.add_parser("google")
    g.add_argument("--wheel", required=True)
    args = parser.parse_args()
    {"alibaba": alibaba, "azure": azure, "google": google}[args.vendor](args)


if __name__ == "__main__":
    main()
