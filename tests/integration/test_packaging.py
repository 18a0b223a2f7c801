#!/usr/bin/env python3
"""How the built binary is shipped: the container image installs the
libraries the binary links, and no library it does not link, and the
system CA store; its configurations keep the workflow journal where its
user can write."""
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


def defined_functions():
    """The functions the binary defines itself (those of a library compiled
    into it, such as llhttp from Debian 12's node-llhttp sources)."""
    out = subprocess.run(["nm", "--defined-only", tandem_bin()], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return {f[2] for f in (line.split() for line in out.stdout.splitlines())
            if len(f) == 3 and f[1] in "Tt"}


def compiled_in(package, functions):
    """True when the library of `package` (libllhttp9.2, libllhttp-dev: llhttp)
    is compiled into this build: the binary defines its llhttp_ functions.
    Debian 13 ships as a library what Debian 12 ships as sources, so the
    image links what the host build compiles in."""
    name = re.sub(r"(-dev|[0-9.]+(t64)?)$", "", package[len("lib"):])
    return any(f.startswith(name + "_") for f in functions)


@t.case
def image_installs_no_library_the_binary_does_not_link():
    stems, functions = linked_stems(), defined_functions()
    for stage, pkgs in stage_packages().items():
        for p in library_packages(pkgs):
            assert any(p.startswith(s) for s in stems) or package_ships(p, stems) \
                or compiled_in(p, functions), (stage, p, sorted(stems))


@t.case
def run_stage_has_the_system_ca_store_that_upstream_tls_verifies_against():
    """An upstream's tls verifies against the system CA store unless it
    names a `ca` (/etc/ssl/certs/ca-certificates.crt, which Debian's
    ca-certificates writes): without it in the image, such an upstream
    stops the gateway at start."""
    assert "ca-certificates" in stage_packages()["run"], stage_packages()["run"]


def dockerfile_text():
    with open(os.path.join(source_root(), "docker", "Dockerfile")) as f:
        return f.read().replace("\\\n", " ")


@t.case
def image_configurations_keep_the_workflow_journal_where_the_image_user_writes():
    """The image runs as an unprivileged user who can write only the
    directory the image creates for it; the SQLite journal's data_dir
    (default "data" beside the configuration, /etc/tandem/data, root's)
    must be that directory in every configuration the image ships, or
    workflows dropped into /etc/tandem/workflows cannot start."""
    import json
    text = dockerfile_text()
    owned = re.findall(r"install -d -o tandem -g tandem(?: -m \d+)? (/\S+)", text)
    assert owned, "the Dockerfile creates no directory for its user"
    etc = re.search(r"ENV TANDEM_CONFIG=(\S+)", text).group(1)
    for rel in ("docker/tandem.json", "docker/tandem.compose.json"):
        with open(os.path.join(source_root(), rel)) as f:
            cfg = json.load(f)
        data_dir = cfg.get("workflows", {}).get("journal", {}).get("data_dir", "data")
        resolved = os.path.normpath(os.path.join(os.path.dirname(etc), data_dir))
        assert any(resolved == d or resolved.startswith(d + "/") for d in owned), \
            (rel, resolved, owned)


t.finish()
