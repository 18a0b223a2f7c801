#!/usr/bin/env python3
"""The workflow parts of the admin API and `tandem ctl` through the real
binary, on a gateway without workflow routes: /metrics carries the workflow
families (parsed by a real Prometheus text-format parser), the workflow
endpoints refuse malformed ids and queries before any call into the
service, `tandem ctl workflows` refuses malformed arguments before sending
anything, and a GET under the status path is left to the routes when no
workflow is loaded."""
import http.client
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import Gateway, TestRun, tandem_bin  # noqa: E402

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

t = TestRun("workflows_admin")

HELLO = {"name": "hello", "match": {"path_prefix": "/"},
         "respond": {"status": 200, "body": "hello\n", "headers": {"content-type": "text/plain"}}}


def admin(gw, method, path):
    c = http.client.HTTPConnection("127.0.0.1", gw.admin_port, timeout=10)
    c.request(method, path, headers={"Host": f"127.0.0.1:{gw.admin_port}"})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


@t.case
def metrics_carry_the_workflow_families():
    gw = Gateway([HELLO])
    try:
        st, body = admin(gw, "GET", "/metrics")
        assert st == 200, st
        fams = {f.name: f for f in text_string_to_metric_families(body.decode())}
        for name, kind in [("tandem_workflows", "counter"),
                           ("tandem_workflow_step_duration_seconds", "histogram"),
                           ("tandem_workflows_running", "gauge"),
                           ("tandem_workflows_recovered", "counter"),
                           ("tandem_workflow_journal_commit_duration_seconds", "summary"),
                           ("tandem_workflow_journal_batch_size", "summary"),
                           ("tandem_workflow_journal_batch_size_max", "gauge"),
                           ("tandem_workflow_journal_bytes", "counter")]:
            assert name in fams, (name, sorted(fams))
            assert fams[name].type == kind, (name, fams[name].type)
    finally:
        gw.close()


@t.case
def workflow_endpoints_refuse_malformed_ids_and_queries():
    gw = Gateway([HELLO])
    try:
        for method, path, status, code in [
                ("GET", "/admin/workflows/ABC", 400, "bad_id"),
                ("POST", "/admin/workflows/xyz/retry", 400, "bad_id"),
                ("GET", "/admin/workflows?limit=0", 400, "bad_request"),
                ("GET", "/admin/workflows?after=nope", 400, "bad_request"),
                ("DELETE", "/admin/workflows", 405, "method_not_allowed"),
                ("GET", "/admin/workflows/" + "0" * 32 + "/retry", 405, "method_not_allowed")]:
            st, body = admin(gw, method, path)
            assert st == status, (method, path, st, body)
            assert json.loads(body)["error"] == code, (path, body)
    finally:
        gw.close()


@t.case
def ctl_workflows_sends_well_formed_commands_and_refuses_malformed_ones():
    for args in (["workflows", "nope"], ["workflows", "retry"], ["workflows", "kill", "0" * 32],
                 ["workflows", "--state", "a&b"], ["workflows", "a", "b", "c"]):
        r = subprocess.run([tandem_bin(), "ctl", "--admin", "127.0.0.1:1"] + args,
                           capture_output=True, timeout=20)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
    # Well-formed ones are sent (nothing listens there: exit 1, not 2).
    for args in (["workflows", "--state", "failed", "--limit", "5"], ["workflows", "0" * 32],
                 ["workflows", "resolve", "0" * 32, "--note", "by hand"]):
        r = subprocess.run([tandem_bin(), "ctl", "--admin", "127.0.0.1:1"] + args,
                           capture_output=True, timeout=20)
        assert r.returncode == 1, (args, r.returncode, r.stderr)


@t.case
def status_path_is_left_to_the_routes_without_workflows():
    gw = Gateway([HELLO])
    try:
        c = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
        c.request("GET", "/workflows/" + "0" * 32)
        r = c.getresponse()
        assert r.status == 200 and r.read() == b"hello\n", r.status
        c.close()
    finally:
        gw.close()


t.finish()
