#!/usr/bin/env python3
"""Regenerates cloud-aws/vendor/*.json from the botocore wheel on PyPI.

Usage: python3 cloud-aws/vendor/regenerate.py [VERSION]
  (runs `pip download botocore==VERSION --no-deps` into a temp dir; default: the version
  recorded in vendor/VERSION)

Each extract keeps the service `metadata`, the operations the provider (or the container's
entrypoint) calls, and every shape they reach, with the documentation strings removed.
"""
import gzip, json, os, subprocess, sys, tempfile, zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
SERVICES = {
    "ecs": ("2014-11-13", ["RunTask", "StopTask", "ListTasks", "DescribeTasks",
                            "RegisterTaskDefinition", "DescribeTaskDefinition"]),
    "secretsmanager": ("2017-10-17", ["CreateSecret", "PutSecretValue", "DeleteSecret",
                                      "TagResource", "GetSecretValue"]),
}
DROP = {"documentation", "documentationUrl", "deprecatedMessage", "examples"}


def strip(node):
    if isinstance(node, dict):
        return {k: strip(v) for k, v in node.items() if k not in DROP}
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def reach(shapes, name, seen):
    if name in seen:
        return
    seen.add(name)
    s = shapes[name]
    refs = [m["shape"] for m in s.get("members", {}).values()]
    for key in ("member", "key", "value"):
        if key in s:
            refs.append(s[key]["shape"])
    for r in refs:
        reach(shapes, r, seen)


def main():
    version = sys.argv[1] if len(sys.argv) > 1 else open(os.path.join(HERE, "VERSION")).read().split()[1]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.check_call([sys.executable, "-m", "pip", "download", f"botocore=={version}",
                               "--no-deps", "-q", "-d", tmp])
        wheel = next(os.path.join(tmp, f) for f in os.listdir(tmp) if f.endswith(".whl"))
        with zipfile.ZipFile(wheel) as z:
            for service, (api, ops) in SERVICES.items():
                model = json.loads(gzip.decompress(z.read(f"botocore/data/{service}/{api}/service-2.json.gz")))
                seen = set()
                out_ops = {}
                for op in ops:
                    o = model["operations"][op]
                    out_ops[op] = strip(o)
                    for part in ("input", "output"):
                        if part in o:
                            reach(model["shapes"], o[part]["shape"], seen)
                    for e in o.get("errors", []):
                        reach(model["shapes"], e["shape"], seen)
                extract = {
                    "source": f"botocore {version} (PyPI wheel), botocore/data/{service}/{api}/service-2.json",
                    "license": "Apache-2.0 (botocore, Copyright Amazon.com, Inc. or its affiliates)",
                    "metadata": model["metadata"],
                    "operations": out_ops,
                    "shapes": {k: strip(model["shapes"][k]) for k in sorted(seen)},
                }
                path = os.path.join(HERE, f"{service}-{api}.json")
                with open(path, "w") as f:
                    json.dump(extract, f, indent=1, sort_keys=True)
                    f.write("\n")
                print(f"wrote {path}: {len(out_ops)} operations, {len(seen)} shapes")


if __name__ == "__main__":
    main()
