#!/usr/bin/env python3
"""The key tables against what is written from them: README.md's
configuration table must state every key's default as the binary's table
does (`tandem check --print-keys`), the checked-in JSON Schemas must be what
`tandem schema config|routes` generates, and every shipped configuration and
route file must validate against them (python3-jsonschema) and name its
schema in "$schema". The configurations the integration tests start the
gateway on are validated by the harness (harness.validate_config)."""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from harness import TestRun, source_root, tandem_bin, validate_config  # noqa: E402

t = TestRun("config_schema")
SRC = source_root()


def binary_keys():
    """{path: default text} from the binary's key table, array paths without
    their [] (README writes `listeners[].x` and `upstreams.NAME.targets[]`)."""
    out = subprocess.run([tandem_bin(), "check", "--print-keys"], capture_output=True,
                         text=True, check=True).stdout
    keys = {}
    for line in out.splitlines():
        path, typ, default = line.split("\t")[:3]
        if path.startswith("(workflow file)"):
            continue  # documented in gateway/src/workflow/README.md (below)
        if typ != "internal":
            keys[path.replace("[]", "")] = (typ, default)
    return keys


def readme_rows():
    """[(path, default text)] from README.md's configuration table. A row may
    name several keys (`a.b` / `c`: c is a sibling of b) with as many
    defaults separated by " / "."""
    text = open(os.path.join(SRC, "README.md")).read()
    start = text.index("| key | default | meaning |")
    rows = []
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        names = re.findall(r"`([^`]+)`", cells[0])
        defaults = cells[1].split(" / ") if len(names) > 1 else [cells[1]]
        assert len(defaults) == len(names), f"row {cells[0]}: {len(names)} keys, defaults {cells[1]}"
        parent = names[0].rsplit(".", 1)[0] if "." in names[0] else ""
        for i, (name, default) in enumerate(zip(names, defaults)):
            path = name if i == 0 or not parent else parent + "." + name
            rows.append((path.replace("[]", ""), default))
    return rows


@t.case
def readme_defaults_match_the_key_table():
    keys = binary_keys()
    rows = readme_rows()
    problems = []
    for path, default in rows:
        if path not in keys:
            problems.append(f"README row {path}: no such key in the binary's table")
        elif keys[path][1] != default:
            problems.append(f"README row {path}: default {default!r}, the table says "
                            f"{keys[path][1]!r}")
    documented = {p for p, _ in rows}
    for path, (typ, _) in keys.items():
        if typ in ("object", "map") or (typ == "array" and path not in documented and
                                       any(k.startswith(path + ".") for k in keys)):
            continue  # a container: its keys have rows
        # A key's own row, not its container's: a default written only in
        # the container's prose would go unchecked.
        if path not in documented:
            problems.append(f"key {path} has no README row")
    assert not problems, "\n".join(problems)


@t.case
def workflow_readme_documents_every_workflow_key():
    out = subprocess.run([tandem_bin(), "check", "--print-keys"], capture_output=True,
                         text=True, check=True).stdout
    text = open(os.path.join(SRC, "gateway", "src", "workflow", "README.md")).read()
    missing = []
    seen = 0
    for line in out.splitlines():
        path = line.split("\t")[0]
        if not path.startswith("(workflow file)"):
            continue
        seen += 1
        name = path.rsplit(".", 1)[-1].replace("[]", "")
        if f"`{name}`" not in text:
            missing.append(path)
    assert seen > 30, f"--print-keys lists {seen} workflow file keys"
    assert not missing, "not in gateway/src/workflow/README.md: " + ", ".join(missing)


@t.case
def checked_in_schemas_are_the_generated_ones():
    for which, name in (("config", "tandem.schema.json"), ("routes", "routes.schema.json"),
                        ("workflows", "workflows.schema.json")):
        generated = subprocess.run([tandem_bin(), "schema", which], capture_output=True,
                                   text=True, check=True).stdout
        path = os.path.join(SRC, "config", "schema", name)
        with open(path) as f:
            checked_in = f.read()
        assert generated == checked_in, (
            f"config/schema/{name} differs from `tandem schema {which}`: regenerate it with "
            f"`tandem schema {which} > config/schema/{name}`")


@t.case
def schemas_are_valid_json_schemas():
    import jsonschema
    for name in ("tandem.schema.json", "routes.schema.json", "workflows.schema.json"):
        with open(os.path.join(SRC, "config", "schema", name)) as f:
            jsonschema.Draft202012Validator.check_schema(json.load(f))


SHIPPED_CONFIGS = ["config/tandem.json", "docker/tandem.json", "docker/tandem.compose.json"]
SHIPPED_ROUTES = sorted(os.path.relpath(p, SRC) for p in
                        glob.glob(os.path.join(SRC, "config", "routes", "*.json")))


@t.case
def shipped_files_validate_against_the_schemas():
    assert SHIPPED_ROUTES, "no route files under config/routes"
    for rel in SHIPPED_CONFIGS:
        with open(os.path.join(SRC, rel)) as f:
            validate_config("config", json.load(f), rel)
    for rel in SHIPPED_ROUTES:
        with open(os.path.join(SRC, rel)) as f:
            validate_config("routes", json.load(f), rel)


@t.case
def shipped_config_files_name_their_schema():
    for rel, schema in [("config/tandem.json", "tandem.schema.json")] + [
            (r, "routes.schema.json") for r in SHIPPED_ROUTES]:
        path = os.path.join(SRC, rel)
        with open(path) as f:
            named = json.load(f).get("$schema")
        assert named, f"{rel} has no \"$schema\""
        target = os.path.normpath(os.path.join(os.path.dirname(path), named))
        assert target == os.path.join(SRC, "config", "schema", schema), (rel, named)


@t.case
def schema_refuses_what_check_refuses():
    """The schema is not a rubber stamp: an unknown key, a value out of
    range and a wrong choice are refused by both."""
    import jsonschema
    bad = [
        {"listeners": [{"address": "127.0.0.1:0", "max_header_bytes": 10}]},
        {"listeners": [{"address": "127.0.0.1:0", "adress": "x"}]},
        {"listeners": [{"address": "127.0.0.1:0"}], "upstreams": {
            "u": {"targets": [{"address": "127.0.0.1:1"}], "balance": "random"}}},
    ]
    for doc in bad:
        try:
            validate_config("config", doc, "bad")
        except jsonschema.ValidationError:
            continue
        raise AssertionError(f"schema accepted {doc}")


def check_accepts(cfg, routes):
    """`tandem check` on tandem.json `cfg` with one route file `routes`."""
    d = tempfile.mkdtemp(prefix="tandem-schema-")
    try:
        os.makedirs(os.path.join(d, "routes"))
        with open(os.path.join(d, "tandem.json"), "w") as f:
            json.dump(cfg, f)
        with open(os.path.join(d, "routes", "r.json"), "w") as f:
            json.dump(routes, f)
        p = subprocess.run([tandem_bin(), "check", "-c", os.path.join(d, "tandem.json")],
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
    finally:
        shutil.rmtree(d)


@t.case
def schema_accepts_what_check_accepts_at_the_limits():
    """Values at the edge of what `tandem check` takes validate too: the
    schema is never stricter than the gateway."""
    name = ".".join(["a" * 63] * 3 + ["b" * 61])  # 253 bytes, the longest DNS name
    assert len(name) == 253
    cfg = {"listeners": [{"address": "127.0.0.1:0", "name": "n" * 128}],
           "upstreams": {"u" * 128: {"targets": [{"address": "127.0.0.1:1"}], "retries": 10}}}
    routes = {"routes": [
        # "*." and a 253-byte name; a 253-byte name and its final dot.
        {"name": "wild", "match": {"path": "/a", "host": "*." + name},
         "upstream": "u" * 128, "retries": 10, "priority": -1000000,
         "max_body_bytes": 1 << 50, "description": "d" * 4096,
         "timeouts": {"connect_ms": 3600000, "response_ms": 3600000,
                      "tunnel_idle_ms": 86400000}},
        {"name": "dot", "match": {"path": "/b", "host": name + "."},
         "respond": {"status": 599}, "priority": 1000000},
    ]}
    check_accepts(cfg, routes)
    validate_config("config", cfg, "limits tandem.json")
    validate_config("routes", routes, "limits routes")


t.finish()
