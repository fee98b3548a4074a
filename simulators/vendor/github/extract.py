#!/usr/bin/env python3
"""Regenerate the GitHub REST extracts in this folder from the @octokit/openapi npm tarball.

Usage:
    npm pack @octokit/openapi@23.0.2          # writes octokit-openapi-23.0.2.tgz
    python3 extract.py octokit-openapi-23.0.2.tgz

For each description (api.github.com, ghec, ghes-3.19) it keeps only the operations the
github-client sends and the GitHub simulator serves, with $refs resolved (the package's
`*.deref.json` files are already dereferenced), and drops prose (descriptions, examples) so
the extract stays small. Output: `<description>.json`, sorted keys, stable across runs.
"""

import json
import sys
import tarfile
from pathlib import Path

DESCRIPTIONS = ["api.github.com", "ghec", "ghes-3.19"]

SCOPES = ["/repos/{owner}/{repo}", "/orgs/{org}", "/enterprises/{enterprise}"]
OPERATIONS = [
    ("post", "/app/installations/{installation_id}/access_tokens"),
    ("get", "/rate_limit"),
    ("get", "/orgs/{org}/repos"),
    ("get", "/repos/{owner}/{repo}/actions/runs"),
    ("get", "/repos/{owner}/{repo}/actions/runs/{run_id}"),
    ("get", "/repos/{owner}/{repo}/actions/runs/{run_id}/jobs"),
    ("get", "/repos/{owner}/{repo}/actions/jobs/{job_id}"),
]
for prefix in SCOPES:
    OPERATIONS += [
        ("get", prefix + "/actions/runners"),
        ("post", prefix + "/actions/runners/generate-jitconfig"),
        ("get", prefix + "/actions/runners/{runner_id}"),
        ("delete", prefix + "/actions/runners/{runner_id}"),
    ]

# Keys of a JSON schema that matter for validation; the rest is prose.
SCHEMA_KEYS = {
    "type", "properties", "required", "items", "enum", "format", "nullable",
    "additionalProperties", "anyOf", "oneOf", "allOf", "minimum", "maximum",
    "minItems", "maxItems", "minLength", "maxLength", "pattern", "default",
}


def slim(schema):
    """A schema with prose dropped, recursively."""
    if isinstance(schema, list):
        return [slim(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key not in SCHEMA_KEYS:
            continue
        if key == "properties":
            out[key] = {name: slim(s) for name, s in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = slim(value)
        elif key in ("anyOf", "oneOf", "allOf"):
            out[key] = [slim(s) for s in value]
        else:
            out[key] = value
    return out


def json_schema(content):
    for media, body in (content or {}).items():
        if "json" in media:
            return slim(body.get("schema", {}))
    return None


def extract(spec):
    ops = {}
    for method, path in OPERATIONS:
        op = spec["paths"].get(path, {}).get(method)
        if op is None:
            continue
        params = []
        for p in op.get("parameters", []):
            params.append({
                "name": p["name"],
                "in": p["in"],
                "required": bool(p.get("required", False)),
                "schema": slim(p.get("schema", {})),
            })
        entry = {
            "operationId": op["operationId"],
            "parameters": params,
            "responses": {},
        }
        github = op.get("x-github", {})
        if "enabledForGitHubApps" in github:
            entry["enabledForGitHubApps"] = github["enabledForGitHubApps"]
        body = op.get("requestBody")
        if body:
            entry["requestBody"] = {
                "required": bool(body.get("required", False)),
                "schema": json_schema(body.get("content")),
            }
        for status, response in op.get("responses", {}).items():
            entry["responses"][status] = json_schema(response.get("content"))
        ops[f"{method.upper()} {path}"] = entry
    return {
        "openapi": spec.get("openapi"),
        "info": {"title": spec["info"]["title"], "version": spec["info"]["version"]},
        "operations": ops,
    }


def main():
    tarball = Path(sys.argv[1])
    out_dir = Path(__file__).resolve().parent
    with tarfile.open(tarball) as tar:
        version = json.load(tar.extractfile("package/package.json"))["version"]
        for name in DESCRIPTIONS:
            spec = json.load(tar.extractfile(f"package/generated/{name}.deref.json"))
            data = extract(spec)
            data["source"] = {
                "package": "@octokit/openapi",
                "version": version,
                "file": f"generated/{name}.deref.json",
            }
            path = out_dir / f"{name}.json"
            path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
            print(f"{path.name}: {len(data['operations'])} operations")


if __name__ == "__main__":
    main()
