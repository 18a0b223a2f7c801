#!/usr/bin/env python3
"""The tandem command line: --version, --help, bad usage."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import TestRun, tandem_bin  # noqa: E402

t = TestRun("cli")


@t.case
def version_prints_name_and_semver():
    out = subprocess.run([tandem_bin(), "--version"], capture_output=True, text=True)
    assert out.returncode == 0, out
    words = out.stdout.split()
    assert words[0] == "tandem", out.stdout
    assert len(words[1].split(".")) == 3, out.stdout


@t.case
def help_lists_run_and_check():
    out = subprocess.run([tandem_bin(), "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "check" in out.stdout and "-c FILE" in out.stdout, out.stdout


@t.case
def unknown_option_is_usage_error():
    out = subprocess.run([tandem_bin(), "--no-such-flag"], capture_output=True, text=True)
    assert out.returncode == 2, out
    assert "usage" in out.stderr, out.stderr


t.finish()
