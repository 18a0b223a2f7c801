#!/usr/bin/env python3
"""How the built binary is shipped: the container image installs the
libraries the binary links, and no library it does not link."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import TestRun, source_root, tandem_bin  # noqa: E402

t = TestRun("packaging")

# The C library and the dynamic loader come with every Debian base image;
# sanitizer runtimes come with a sanitizer build (-Db_sanitize), which the
# image never is.
BASE = ("libc.so", "ld-linux", "libm.so", "libpthread.so", "libdl.so", "libasan.so",
        "libubsan.so", "libtsan.so", "liblsan.so")


def linked_stems():
    """'libjansson' for libjansson.so.4: each shared library the binary
    needs, outside the C library, without its version."""
    out = subprocess.run(["readelf", "-d", tandem_bin()], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    names = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out.stdout)
    assert names, out.stdout
    return {n.split(".so")[0] for n in names if not n.startswith(BASE)}


def stage_packages():
    """The packages each stage of docker/Dockerfile installs: {stage: [names]}."""
    with open(os.path.join(source_root(), "docker", "Dockerfile")) as f:
        text = f.read().replace("\\\n", " ")
    stages, name = {}, None
    for line in text.splitlines():
        m = re.match(r"FROM\s+\S+(?:\s+AS\s+(\S+))?", line.strip(), re.I)
        if m:
            name = m.group(1) or "run"
            stages[name] = []
            continue
        m = re.search(r"apt-get install (.*?)(?:&&|$)", line)
        if m and name:
            stages[name] += [w for w in m.group(1).split() if not w.startswith("-")]
    return stages


def library_packages(packages):
    """The library packages among `packages` ('libjansson4', 'libjansson-dev'),
    not the C library's."""
    return [p for p in packages if p.startswith("lib") and not p.startswith("libc6")]


@t.case
def run_stage_installs_a_package_for_every_linked_library():
    pkgs = stage_packages()["run"]
    for stem in linked_stems():
        assert any(p.startswith(stem) for p in pkgs), (stem, pkgs)


def package_ships(package, stems):
    """True when `package` (installed here) ships the development link of
    a library named by `stems` (libmbedtls-dev ships libmbedcrypto.so)."""
    out = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True)
    files = {os.path.basename(f) for f in out.stdout.split()} if out.returncode == 0 else set()
    return any(s + ".so" in files for s in stems)


@t.case
def image_installs_no_library_the_binary_does_not_link():
    stems = linked_stems()
    for stage, pkgs in stage_packages().items():
        for p in library_packages(pkgs):
            assert any(p.startswith(s) for s in stems) or package_ships(p, stems), \
                (stage, p, sorted(stems))


t.finish()
