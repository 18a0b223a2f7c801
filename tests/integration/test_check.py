#!/usr/bin/env python3
"""`tandem check -c FILE`: the real binary on good and broken configurations
written to temporary directories. Problems come out as FILE:LINE:COLUMN:
message (route files under their own path), exit 1; a valid configuration
prints a one-line summary and exits 0."""
import atexit
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from harness import TestRun, source_root, tandem_bin  # noqa: E402

t = TestRun("check")

# Limits small enough that no host's descriptor limit makes `check` warn.
GOOD_CONFIG = {
    "listeners": [{"name": "public", "address": "127.0.0.1:0", "max_connections": 100}],
    "upstreams": {"payments": {"targets": [{"address": "127.0.0.1:9000"}],
                               "max_connections": 16}},
    "routes": "routes",
}


def write_tree(files):
    """Writes {relative path: text or JSON-able} under a new temp dir."""
    root = tempfile.mkdtemp(prefix="tandem-check-")
    atexit.register(shutil.rmtree, root, True)
    for rel, content in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(content if isinstance(content, str) else json.dumps(content, indent=2))
    return root


def check(config_path, cwd=None):
    return subprocess.run([tandem_bin(), "check", "-c", config_path], capture_output=True,
                          text=True, cwd=cwd, timeout=30)


def col(line, token):
    """1-based column of `token` in one line of a file (all ASCII here)."""
    return line.index(token) + 1


def problems(stderr):
    """(file, line, column, message) for each FILE:LINE:COLUMN: line."""
    out = []
    for line in stderr.splitlines():
        m = re.match(r"^(.+?):(\d+):(\d+): (.*)$", line)
        if m:
            out.append((m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)))
    return out


@t.case
def shipped_config_is_valid():
    root = source_root()
    out = check("config/tandem.json", cwd=root)
    assert out.returncode == 0, out
    assert re.match(r"^config/tandem.json: ok: 1 listener, 1 upstream, \d+ routes? in \d+ route "
                    r"files?$", out.stdout.strip()), out.stdout


@t.case
def default_config_path_is_config_tandem_json():
    out = subprocess.run([tandem_bin(), "check"], capture_output=True, text=True,
                         cwd=source_root(), timeout=30)
    assert out.returncode == 0, out
    assert out.stdout.startswith("config/tandem.json: ok:"), out.stdout


@t.case
def good_config_prints_summary_and_exits_0():
    root = write_tree({
        "tandem.json": GOOD_CONFIG,
        "routes/a.json": {"routes": [
            {"name": "pay", "match": {"path_prefix": "/pay"}, "upstream": "payments"},
            {"name": "hi", "match": {"path": "/hi"}, "respond": {"body": "hi\n"}}]},
        "routes/b.json": {"routes": [
            {"name": "user", "match": {"path": "/users/:id", "methods": ["GET"]},
             "upstream": "payments", "rewrite": "/v2/users/:id"}]},
    })
    out = check(os.path.join(root, "tandem.json"))
    assert out.returncode == 0, out
    assert out.stdout.strip().endswith(
        "ok: 1 listener, 1 upstream, 3 routes in 2 route files"), out.stdout
    assert out.stderr == "", out.stderr


@t.case
def syntax_error_reports_file_line_column():
    root = write_tree({"tandem.json": '{\n  "listeners": [\n    {"address": "0.0.0.0:80",}\n  ]\n}\n'})
    path = os.path.join(root, "tandem.json")
    out = check(path)
    assert out.returncode == 1, out
    p = problems(out.stderr)
    assert len(p) == 1, out.stderr
    assert p[0][:2] == (path, 3), p
    assert "invalid JSON" in p[0][3], p


@t.case
def absurd_nesting_in_config_or_route_file_is_an_error_at_its_position():
    deep = "[" * 3000 + "]" * 3000
    root = write_tree({"tandem.json": GOOD_CONFIG,
                       "routes/a.json": '{"routes":\n  ' + deep + "}"})
    out = check(os.path.join(root, "tandem.json"))
    assert out.returncode == 1, out
    assert problems(out.stderr) == [(os.path.join(root, "routes", "a.json"), 2, 3 + 63,
                                     "JSON nested deeper than 64 levels")], out.stderr
    root = write_tree({"tandem.json": '{"listeners":\n ' + deep + "}"})
    path = os.path.join(root, "tandem.json")
    out = check(path)
    assert out.returncode == 1, out
    assert problems(out.stderr) == [(path, 2, 2 + 63, "JSON nested deeper than 64 levels")], \
        out.stderr


@t.case
def route_file_problems_name_the_route_file_and_position():
    l2 = '  {"name": "pay", "match": {"path_prefix": "/pay"}, "upstream": "paymnts"},'
    l3 = '  {"name": "pay", "match": {"pth": "/x"}, "respond": {"status": 700}}'
    routes = '{"routes": [\n' + l2 + "\n" + l3 + "\n]}\n"
    root = write_tree({"tandem.json": GOOD_CONFIG, "routes/pay.json": routes})
    out = check(os.path.join(root, "tandem.json"))
    assert out.returncode == 1, out
    rfile = os.path.join(root, "routes", "pay.json")
    p = problems(out.stderr)
    by_msg = {m: (f, l, c) for f, l, c, m in p}

    def at(needle):
        for m, pos in by_msg.items():
            if needle in m:
                return pos
        raise AssertionError(f"no problem mentions {needle!r}:\n{out.stderr}")

    assert at('routes[0].upstream: unknown upstream "paymnts"; did you mean "payments"?') == \
        (rfile, 2, col(l2, '"paymnts"'))
    assert at('routes[1].match.pth: unknown key "pth" in match; did you mean "path"?') == \
        (rfile, 3, col(l3, '"pth"'))
    assert at("routes[1].respond.status: bad status 700") == (rfile, 3, col(l3, "700"))
    name = '"pay"'
    assert at('routes[1].name: duplicate route name "pay"; it is first defined at '
              f"{rfile}:2:{col(l2, name)}") == (rfile, 3, col(l3, name))
    assert len(p) == 5, out.stderr  # also: match needs "path" or "path_prefix"
    assert out.stderr.strip().endswith("5 errors"), out.stderr


@t.case
def config_and_routes_errors_come_out_together():
    cfg = dict(GOOD_CONFIG)
    cfg["listeners"] = [{"name": "public", "adress": "0.0.0.0:8080"}]
    cfg["upstreams"] = {"payments": {"targets": [{"address": "127.0.0.1:9000"}],
                                     "balance": "round_robbin"}}
    root = write_tree({
        "tandem.json": cfg,
        "routes/a.json": {"routes": [{"name": "x", "match": {"path": "/x"}, "upstream": "nope"}]},
    })
    path = os.path.join(root, "tandem.json")
    out = check(path)
    assert out.returncode == 1, out
    msgs = [(f, m) for f, _, _, m in problems(out.stderr)]
    assert any(f == path and 'did you mean "address"?' in m for f, m in msgs), out.stderr
    assert any(f == path and 'did you mean "round_robin"?' in m for f, m in msgs), out.stderr
    assert any(f.endswith("routes/a.json") and 'unknown upstream "nope"' in m
               for f, m in msgs), out.stderr


@t.case
def conflicting_routes_name_both_positions():
    l2 = '  {"name": "a", "match": {"path": "/u/:id"}, "upstream": "payments"},'
    l3 = '  {"name": "b", "match": {"path": "/u/:uid"}, "upstream": "payments"}'
    routes = '{"routes": [\n' + l2 + "\n" + l3 + "\n]}\n"
    root = write_tree({"tandem.json": GOOD_CONFIG, "routes/r.json": routes})
    out = check(os.path.join(root, "tandem.json"))
    assert out.returncode == 1, out
    rfile = os.path.join(root, "routes", "r.json")
    p = problems(out.stderr)
    assert len(p) == 1, out.stderr
    f, line, column, msg = p[0]
    assert (f, line, column) == (rfile, 3, col(l3, '{"path"')), p
    first = col(l2, '{"path"')
    assert f'route "b" conflicts with route "a" ({rfile}:2:{first})' in msg, msg


@t.case
def missing_config_file_is_an_error():
    out = check("/nonexistent/tandem.json")
    assert out.returncode == 1, out
    assert "/nonexistent/tandem.json: cannot open" in out.stderr, out.stderr


@t.case
def missing_routes_directory_is_an_error():
    root = write_tree({"tandem.json": GOOD_CONFIG})
    out = check(os.path.join(root, "tandem.json"))
    assert out.returncode == 1, out
    assert "cannot open routes directory" in out.stderr, out.stderr


@t.case
def route_files_are_read_in_name_order_and_dotfiles_skipped():
    root = write_tree({
        "tandem.json": GOOD_CONFIG,
        "routes/20-b.json": {"routes": [{"name": "dup", "match": {"path": "/b"},
                                         "respond": {}}]},
        "routes/10-a.json": {"routes": [{"name": "dup", "match": {"path": "/a"},
                                         "respond": {}}]},
        "routes/.#10-a.json": "not json at all",
        "routes/notes.txt": "ignored",
    })
    out = check(os.path.join(root, "tandem.json"))
    assert out.returncode == 1, out
    p = problems(out.stderr)
    assert len(p) == 1, out.stderr
    assert p[0][0].endswith("routes/20-b.json"), p
    assert "10-a.json" in p[0][3], p


@t.case
def usage_errors_exit_2():
    out = subprocess.run([tandem_bin(), "check", "-c"], capture_output=True, text=True)
    assert out.returncode == 2, out
    assert "usage" in out.stderr, out.stderr


# ---- workflows ---------------------------------------------------------------

WF_CONFIG = dict(GOOD_CONFIG, upstreams={
    "ledger": {"targets": [{"address": "127.0.0.1:9000"}], "max_connections": 16}})


def readme_transfer():
    """The complete example of gateway/src/workflow/README.md, as written."""
    text = open(os.path.join(source_root(), "gateway", "src", "workflow", "README.md")).read()
    blocks = re.findall(r"```json\n(.*?)```", text, re.S)
    full = [b for b in blocks if '"workflows"' in b and '"steps"' in b]
    assert len(full) == 1, "README.md should hold one complete workflow file"
    return full[0]


TRANSFER_ROUTE = {"routes": [{"name": "transfer", "match": {"path": "/transfers",
                                                            "methods": ["POST"]},
                              "workflow": "transfer"}]}


@t.case
def documented_transfer_workflow_is_valid():
    root = write_tree({"tandem.json": WF_CONFIG, "routes/a.json": TRANSFER_ROUTE,
                       "workflows/transfer.json": readme_transfer()})
    out = check(os.path.join(root, "tandem.json"))
    assert out.returncode == 0, out
    assert out.stdout.strip().endswith(
        "ok: 1 listener, 1 upstream, 1 route in 1 route file, 1 workflow"), out.stdout
    assert out.stderr == "", out.stderr


@t.case
def workflow_file_problems_name_the_file_and_position():
    l3 = '   "steps": [{"name": "debit", "upstream": "ledgr",'
    l4 = '              "request": {"path": "/a/${input.ammount}", "metod": "POST"}}]}'
    text = ('{"workflows": [\n  {"name": "transfer", "input": {"amount": "integer"},\n' + l3 +
            "\n" + l4 + "\n]}\n")
    root = write_tree({"tandem.json": WF_CONFIG, "routes/a.json": TRANSFER_ROUTE,
                       "workflows/t.json": text})
    out = check(os.path.join(root, "tandem.json"))
    assert out.returncode == 1, out
    wfile = os.path.join(root, "workflows", "t.json")
    p = problems(out.stderr)
    assert (wfile, 3, col(l3, '"ledgr"'),
            'workflows[0].steps[0].upstream: unknown upstream "ledgr"; did you mean "ledger"?'
            ) in p, out.stderr
    assert (wfile, 4, col(l4, '"/a/'),
            'workflows[0].steps[0].request.path: ${input.ammount}: unknown input key '
            '"ammount"; did you mean "amount"?') in p, out.stderr
    assert any(f == wfile and ln == 4 and c == col(l4, '"metod"') and
               'did you mean "method"?' in m for f, ln, c, m in p), out.stderr
    # The route naming the workflow is not blamed for the definition's errors.
    assert not any("unknown workflow" in m for _, _, _, m in p), out.stderr


@t.case
def route_naming_an_unknown_workflow_is_reported_with_did_you_mean():
    l2 = '  {"name": "t", "match": {"path": "/t"}, "workflow": "transfr"},'
    l3 = '  {"name": "u", "match": {"path": "/u"}, "workflow": "payroll"}'
    root = write_tree({"tandem.json": WF_CONFIG,
                       "routes/a.json": '{"routes": [\n' + l2 + "\n" + l3 + "\n]}\n",
                       "workflows/transfer.json": readme_transfer()})
    out = check(os.path.join(root, "tandem.json"))
    assert out.returncode == 1, out
    rfile = os.path.join(root, "routes", "a.json")
    p = problems(out.stderr)
    assert (rfile, 2, col(l2, '"transfr"'),
            'routes[0].workflow: unknown workflow "transfr"; did you mean "transfer"?') in p, \
        out.stderr
    assert (rfile, 3, col(l3, '"payroll"'),
            'routes[1].workflow: unknown workflow "payroll" (defined: "transfer")') in p, \
        out.stderr
    # Without a workflows directory no workflow is defined.
    root = write_tree({"tandem.json": WF_CONFIG, "routes/a.json": TRANSFER_ROUTE})
    out = check(os.path.join(root, "tandem.json"))
    assert out.returncode == 1, out
    assert "unknown workflow \"transfer\": the workflows directory defines none" in out.stderr, \
        out.stderr


@t.case
def workflows_section_is_checked():
    cfg = dict(WF_CONFIG, workflows={"dir": "flows", "status_path": "/wf",
                                     "journal": {"backend": "postgres", "durabel": True}})
    root = write_tree({"tandem.json": cfg, "routes/a.json": {"routes": []}})
    out = check(os.path.join(root, "tandem.json"))
    assert out.returncode == 1, out
    msgs = [m for _, _, _, m in problems(out.stderr)]
    assert any(m.startswith("workflows.status_path: status_path must start and end with '/'")
               for m in msgs), out.stderr
    assert any('workflows.journal.durabel: unknown key "durabel" in journal; did you mean '
               '"durable"?' in m for m in msgs), out.stderr
    assert any("the postgres journal needs" in m for m in msgs), out.stderr
    # "dir" is read relative to the configuration file
    cfg = dict(WF_CONFIG, workflows={"dir": "flows"})
    root = write_tree({"tandem.json": cfg, "routes/a.json": TRANSFER_ROUTE,
                       "flows/t.json": readme_transfer()})
    out = check(os.path.join(root, "tandem.json"))
    assert out.returncode == 0, out


t.finish()
