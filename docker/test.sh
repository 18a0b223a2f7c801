#!/bin/bash
# docker/test.sh: builds Tandem's container image and checks it running.
#
# Uses `docker` when a Docker engine answers, podman otherwise (set up as
# ../shared/CONTAINERS.md describes: runc, lowered ulimits, and a
# debian:SUITE-slim base image, SUITE the one docker/Dockerfile names,
# built offline with debootstrap when no registry can be reached). Prints one `ok`/`FAIL` line per check and ends
# with `N passed, N failed`; exits 1 if anything failed.
#
# Environment:
#   TANDEM_CONTAINER_ONLY_BUILD=1  only build the image and check it at rest:
#                                  size, --version as the non-root user, the
#                                  configuration, HEALTHCHECK, STOPSIGNAL, ports
#   TANDEM_CONTAINER_ENGINE        docker or podman instead of the choice above
#   TANDEM_IMAGE                   image tag to build (default tandem:test)
#   TANDEM_DRAIN_TIMEOUT           seconds SIGTERM may take (default 10, the
#                                  grace period of `docker stop`)
#   TANDEM_DEBIAN_ARCHIVE          Debian archive for debootstrap (default: the
#                                  first one in the machine's apt sources)
#   TANDEM_ROOTFS                  scratch directory for debootstrap
#                                  (default /var/tmp/tandem-rootfs-SUITE-PID,
#                                  removed after)
set -u
cd "$(dirname "$0")/.."

image=${TANDEM_IMAGE:-tandem:test}
only_build=${TANDEM_CONTAINER_ONLY_BUILD:-0}
drain=${TANDEM_DRAIN_TIMEOUT:-10}
max_mb=100
# The base image the Dockerfile's stages start from (debian:trixie-slim):
# built offline from Debian's archive when the engine has no copy.
base_tag=$(awk 'toupper($1) == "FROM" && $2 ~ /^debian:/ { print $2; exit }' docker/Dockerfile)
base=docker.io/library/${base_tag:-debian:trixie-slim}
suite=${base##*:}
suite=${suite%-slim}
token=test-token-$$-$RANDOM$RANDOM
passed=0
failed=0
containers=()
work=$(mktemp -d "${TMPDIR:-/tmp}/tandem-container-test.XXXXXX")

ok() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
note() { echo "#    $*"; }
# The last lines of a command's output on one line, for a FAIL message.
oneline() { tail -n "${1:-3}" | tr -s '\n\t ' ' ' | cut -c 1-300; }
summary() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit $?
}

cleanup() {
    for c in "${containers[@]}"; do
        "$engine" rm -f "$c" >/dev/null 2>&1
    done
    rm -rf "$work"
}
engine=true
trap cleanup EXIT
trap 'exit 130' INT TERM

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs the Debian packages given that are missing.
need_packages() {
    local missing="" p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    echo "# installing$missing" >&2
    as_root apt-get update -qq &&
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
}

# The first Debian archive of the machine's apt sources (deb822 or one-line).
debian_archive() {
    if [ -n "${TANDEM_DEBIAN_ARCHIVE:-}" ]; then
        echo "$TANDEM_DEBIAN_ARCHIVE"
        return
    fi
    local f uri
    for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri=$(awk '/^URIs:/ { print $2; exit }' "$f")
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) { print $i; exit } }' "$f")
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
    echo http://deb.debian.org/debian
}

# Builds $base from Debian's archive and slims it the way the official
# debian:SUITE-slim images are slimmed (debuerreotype: no docs but copyrights, no
# man pages or locales, no apt lists or caches, and dpkg told to keep it so),
# so that the image size measured here is the size users get.
build_base_image() {
    local rootfs=${TANDEM_ROOTFS:-/var/tmp/tandem-rootfs-$suite-$$} archive t0=$SECONDS
    archive=$(debian_archive)
    echo "# building $base with debootstrap from $archive" >&2
    as_root rm -rf "$rootfs"
    if ! as_root debootstrap --variant=minbase "$suite" "$rootfs" "$archive" >"$work/debootstrap.log" 2>&1; then
        tail -20 "$work/debootstrap.log" >&2
        as_root rm -rf "$rootfs"
        return 1
    fi
    as_root sh -eu -c '
        cd "$1"
        cat > etc/dpkg/dpkg.cfg.d/docker <<EOF
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
EOF
        cat > etc/apt/apt.conf.d/docker-clean <<EOF
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
        echo "Acquire::Languages \"none\";" > etc/apt/apt.conf.d/docker-no-languages
        echo "Apt::AutoRemove::SuggestsImportant \"false\";" > etc/apt/apt.conf.d/docker-autoremove-suggests
        find usr/share/doc -mindepth 1 ! -type d ! -name copyright -delete
        find usr/share/doc -mindepth 1 -depth -type d -empty -delete
        rm -rf usr/share/groff/* usr/share/info/* usr/share/linda/* \
            usr/share/lintian/overrides/* usr/share/locale/* usr/share/man/*
        rm -rf var/lib/apt/lists/* var/cache/apt/*.bin var/cache/apt/archives/*.deb \
            var/log/apt/* var/log/dpkg.log var/log/bootstrap.log
    ' sh "$rootfs" || return 1
    as_root tar -C "$rootfs" -c . | "$engine" import -c 'CMD ["bash"]' - "$base" >/dev/null 2>"$work/import.log"
    local rc=$?
    as_root rm -rf "$rootfs"
    if [ $rc -ne 0 ]; then
        tail -20 "$work/import.log" >&2
        return $rc
    fi
    echo "# base image built in $((SECONDS - t0)) s" >&2
}

setup_podman() {
    need_packages podman runc debootstrap || return 1
    # crun cannot raise the file limits in some sandboxes: use runc and
    # lower the default limits.
    if [ -z "${CONTAINERS_CONF:-}" ]; then
        export CONTAINERS_CONF="$work/containers.conf"
        cat >"$CONTAINERS_CONF" <<'EOF'
[containers]
default_ulimits = ["nofile=10000:10000", "nproc=1000:1000"]
[engine]
runtime = "runc"
EOF
    fi
    podman image exists "$base" || build_base_image
}

# --- engine -------------------------------------------------------------------

if [ -n "${TANDEM_CONTAINER_ENGINE:-}" ]; then
    engine=$TANDEM_CONTAINER_ENGINE
elif command -v docker >/dev/null 2>&1 && timeout 30 docker info >/dev/null 2>&1; then
    engine=docker
else
    engine=podman
fi
echo "# engine: $engine"
if [ "$engine" = podman ]; then
    if ! setup_podman; then
        fail "podman set up with a $base base image"
        summary
    fi
fi

# --- build --------------------------------------------------------------------

t0=$SECONDS
if [ "$engine" = podman ]; then
    # The docker image format keeps HEALTHCHECK (OCI has no field for it).
    build=(podman build --pull=never --network host --format docker)
else
    build=(docker build)
fi
if "${build[@]}" -f docker/Dockerfile -t "$image" . >"$work/build.log" 2>&1; then
    ok "image $image builds ($((SECONDS - t0)) s)"
else
    tail -40 "$work/build.log"
    fail "image $image builds ($((SECONDS - t0)) s)"
    summary
fi

size=$("$engine" image inspect --format '{{.Size}}' "$image")
size_mb=$(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1000000 }')
echo "# image size: $size_mb MB ($size bytes)"
if [ "$size" -lt $((max_mb * 1000000)) ]; then
    ok "image is under $max_mb MB ($size_mb MB)"
else
    fail "image is under $max_mb MB ($size_mb MB)"
fi

# One-off containers run without their health check: podman would try to
# schedule it with systemd timers.
once=("$engine" run --rm --no-healthcheck)

out=$("${once[@]}" "$image" --version 2>"$work/err")
if echo "$out" | grep -Eq '^tandem [0-9]+\.[0-9]+'; then
    ok "tandem --version runs in the container ($(echo "$out" | head -1))"
else
    fail "tandem --version runs in the container: $out $(oneline <"$work/err")"
fi
# The image's build negotiates TLS 1.3 (Debian 13's mbedtls 3.6), and says so.
if echo "$out" | grep -Eq '^mbedtls 3\.[0-9]+\.[0-9]+, TLS 1\.2 and 1\.3$'; then
    ok "the image's build has TLS 1.2 and 1.3 ($(echo "$out" | tail -1))"
else
    fail "the image's build has TLS 1.2 and 1.3: $(echo "$out" | oneline 1)"
fi

uid=$("${once[@]}" --entrypoint id "$image" -u 2>"$work/err")
if [ -n "$uid" ] && [ "$uid" != 0 ] && [ "$uid" -eq "$uid" ] 2>/dev/null; then
    ok "the container runs as a non-root user (uid $uid)"
else
    fail "the container runs as a non-root user: id -u says $uid $(oneline <"$work/err")"
fi

out=$("${once[@]}" --entrypoint /bin/sh "$image" -c '
    set -e
    test -r /etc/tandem/tandem.json
    ls /etc/tandem/routes/*.json >/dev/null
    grep -q "\"0\.0\.0\.0:9901\"" /etc/tandem/tandem.json
    grep -q "\"token_env\": *\"TANDEM_ADMIN_TOKEN\"" /etc/tandem/tandem.json
    test "$TANDEM_CONFIG" = /etc/tandem/tandem.json' 2>&1)
if [ $? -eq 0 ]; then
    ok "configuration in /etc/tandem, admin on 0.0.0.0:9901 with token from TANDEM_ADMIN_TOKEN"
else
    fail "configuration in /etc/tandem, admin on 0.0.0.0:9901 with token from TANDEM_ADMIN_TOKEN: $(echo "$out" | oneline)"
fi

# Debian 13's mbedtls (3.6) is the one that negotiates TLS 1.3; Debian 12's
# (2.28) stops at TLS 1.2.
out=$("${once[@]}" --entrypoint /bin/sh "$image" -c '
    . /etc/os-release
    echo "debian $VERSION_ID mbedtls $(dpkg-query -W -f "\${Version}" "libmbedcrypto*" 2>/dev/null)"' 2>&1)
if echo "$out" | grep -Eq '^debian 1[3-9] mbedtls 3\.([6-9]|[1-9][0-9])'; then
    ok "the image is Debian 13 or later with mbedtls 3.6 or later ($out)"
else
    fail "the image is Debian 13 or later with mbedtls 3.6 or later: $(echo "$out" | oneline)"
fi

# The run stage's library packages, as the Dockerfile names them: the
# binary finds every library it loads, and each package gives it one it
# names itself (readelf's NEEDED, read on the host from a copy of the
# image's binary). tests/integration/test_packaging.py checks the host build
# against the same list; this checks the image's own binary, whose
# libraries are Debian 13's.
run_libs=$(sed -e ':a' -e '/\\$/N; s/\\\n//; ta' docker/Dockerfile |
    awk 'toupper($1) == "FROM" { libs = "" }
         /apt-get install/ { for (i = 1; i <= NF; i++) if ($i ~ /^lib/ && $i !~ /^libc6/) libs = libs " " $i }
         END { print libs }')
needed=""
cid=$("$engine" create --no-healthcheck "$image" 2>/dev/null) &&
    "$engine" cp "$cid:/usr/bin/tandem" "$work/tandem" >/dev/null 2>&1 &&
    needed=$(readelf -d "$work/tandem" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
[ -n "${cid:-}" ] && "$engine" rm -f "$cid" >/dev/null 2>&1
out=$("${once[@]}" --entrypoint /bin/sh "$image" -c '
    needed=$1
    shift
    ldd /usr/bin/tandem >/tmp/ldd || exit 1
    if grep "not found" /tmp/ldd; then exit 1; fi
    for p in "$@"; do
        found=no
        for f in $(dpkg -L "$p" | grep "\.so"); do
            case " $needed " in *" ${f##*/} "*) found=yes ;; esac
        done
        [ $found = yes ] || { echo "$p: gives no library the binary names ($needed)"; exit 1; }
    done' sh "$needed" $run_libs 2>&1)
if [ $? -eq 0 ] && [ -n "$run_libs" ] && [ -n "$needed" ]; then
    ok "the binary finds every library it loads; each library package installed is one it names ($run_libs )"
else
    fail "the binary finds every library it loads; each library package installed is one it names ($run_libs ): ${needed:-no NEEDED list} $(echo "$out" | oneline)"
fi

if [ "$engine" = podman ]; then
    hc=$(podman image inspect --format '{{json .HealthCheck}}' "$image" 2>&1)
else
    hc=$(docker image inspect --format '{{json .Config.Healthcheck}}' "$image" 2>&1)
fi
if echo "$hc" | grep -q '"ctl"'; then
    ok "HEALTHCHECK defined ($hc)"
else
    fail "HEALTHCHECK defined: $hc"
fi

cfg=$("$engine" image inspect --format '{{.Config.StopSignal}} {{json .Config.ExposedPorts}}' "$image" 2>&1)
if echo "$cfg" | grep -Eq '^SIGTERM ' && echo "$cfg" | grep -q '8080/tcp' &&
    echo "$cfg" | grep -q '8443/tcp' && echo "$cfg" | grep -q '9901/tcp'; then
    ok "STOPSIGNAL SIGTERM, ports 8080, 8443 and 9901 exposed"
else
    fail "STOPSIGNAL SIGTERM, ports 8080, 8443 and 9901 exposed: $cfg"
fi

if [ "$only_build" = 1 ]; then
    summary
fi

# --- run ----------------------------------------------------------------------

need_packages curl >/dev/null || true

# Three free ports on the loopback interface for the published ports.
read -r port tls_port admin_port < <(/usr/bin/python3 -c '
import socket
s = [socket.socket() for _ in range(3)]
for x in s:
    x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))' 2>/dev/null || echo "18080 18443 19901")
note "ports: 127.0.0.1:$port -> 8080, 127.0.0.1:$tls_port -> 8443, 127.0.0.1:$admin_port -> 9901"

# GET URL [curl args]: prints the status code ("000" when nothing answers)
# and leaves the body in $work/body.
http() {
    local url=$1
    shift
    curl -s -o "$work/body" -w '%{http_code}' --max-time 5 "$@" "$url" 2>/dev/null || true
}
running() {
    [ "$("$engine" inspect --format '{{.State.Running}}' "$1" 2>/dev/null)" = true ]
}
# wait_for SECONDS CONTAINER COMMAND...: polls COMMAND every 0.2 s while the
# container runs.
wait_for() {
    local deadline=$((SECONDS + $1)) c=$2
    shift 2
    while [ $SECONDS -lt $deadline ]; do
        "$@" && return 0
        running "$c" || { "$@"; return $?; }
        sleep 0.2
    done
    return 1
}

# As the gateway runs: with the token's variable set (check refuses a
# token_env naming an unset variable, as the gateway does), through the
# image's entrypoint, which makes the TLS listener's certificate first.
out=$("${once[@]}" -e TANDEM_ADMIN_TOKEN=check-token "$image" \
    check -c /etc/tandem/tandem.json 2>&1)
if [ $? -eq 0 ]; then
    ok "tandem check accepts the image's configuration"
else
    fail "tandem check accepts the image's configuration: $(echo "$out" | oneline 5)"
fi

# Bound to 0.0.0.0 the admin listener needs its token: without one the
# gateway must refuse to start and say why.
name=tandem-test-$$-notoken
containers+=("$name")
"$engine" run -d --no-healthcheck --name "$name" "$image" >/dev/null 2>&1
code=$(timeout 15 "$engine" wait "$name" 2>/dev/null | head -1)
logs=$("$engine" logs "$name" 2>&1)
if [ -n "$code" ] && [ "$code" != 0 ] && echo "$logs" | grep -q TANDEM_ADMIN_TOKEN; then
    ok "without TANDEM_ADMIN_TOKEN the gateway refuses to start, saying why (exit $code)"
else
    fail "without TANDEM_ADMIN_TOKEN the gateway refuses to start, saying why (exit ${code:-none}): $(echo "$logs" | oneline)"
fi

# The routes directory is mounted from the host, as users do.
mkdir -p "$work/routes"
cp config/routes/*.json "$work/routes/"
chmod 0755 "$work/routes"
chmod 0644 "$work/routes/"*.json

name=tandem-test-$$
containers+=("$name")
if ! "$engine" run -d --name "$name" \
    -p "127.0.0.1:$port:8080" -p "127.0.0.1:$tls_port:8443" -p "127.0.0.1:$admin_port:9901" \
    -e TANDEM_ADMIN_TOKEN="$token" \
    -v "$work/routes:/etc/tandem/routes" \
    "$image" >"$work/run.log" 2>&1; then
    note "$(oneline <"$work/run.log")"
fi
base_url=http://127.0.0.1:$port
admin_url=http://127.0.0.1:$admin_port
auth="Authorization: Bearer $token"

hello_ok() { [ "$(http "$base_url/hello")" = 200 ] && grep -q "hello from tandem" "$work/body"; }
if wait_for 30 "$name" hello_ok; then
    ok "demo route /hello answers through the published port"
else
    fail "demo route /hello answers through the published port (status $(http "$base_url/hello"))"
fi

# The image links Debian 13's llhttp 9, which knows more methods (QUERY)
# than the llhttp 8.1.0 a Debian 12 build compiles in; the gateway's method
# table is 8.1.0's either way.
st=$(http "$base_url/hello" -X QUERY)
if [ "$st" = 501 ]; then
    ok "a method llhttp 8.1.0 does not know (QUERY) gets 501, as on a Debian 12 build"
else
    fail "a method llhttp 8.1.0 does not know (QUERY) gets 501, as on a Debian 12 build (got $st)"
fi

# The TLS listener serves the certificate the entrypoint made at first run
# (docker/entrypoint.sh): its key readable by the image user only.
st=$("$engine" exec "$name" stat -c '%a %u' /var/lib/tandem/tls/key.pem 2>&1)
if [ "$st" = "600 $uid" ]; then
    ok "the first run made a self-signed certificate, its key mode 0600 owned by uid $uid"
else
    fail "the first run made a self-signed certificate, its key mode 0600 owned by uid $uid: $st"
fi
"$engine" exec "$name" cat /var/lib/tandem/tls/cert.pem >"$work/cert.pem" 2>/dev/null
# tls_get MIN MAX: the version a client limited to MIN..MAX negotiates with
# the TLS listener (trusting only the image's certificate, checking the
# name localhost) and the status line of GET /hello over it; "refused
# REASON" when the handshake fails.
tls_get() {
    /usr/bin/python3 - "$tls_port" "$work/cert.pem" "$1" "$2" <<'EOF' 2>&1
import socket, ssl, sys
port, cafile, lo, hi = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=cafile)
ctx.minimum_version = getattr(ssl.TLSVersion, lo)
ctx.maximum_version = getattr(ssl.TLSVersion, hi)
try:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            print(s.version(), data.split(b"\r\n", 1)[0].decode())
except (ssl.SSLError, OSError) as e:
    print("refused", e)
EOF
}
out=$(tls_get TLSv1_3 TLSv1_3)
if [ "$out" = "TLSv1.3 HTTP/1.1 200 OK" ]; then
    ok "a TLS 1.3 client (minimum_version TLSv1_3) gets /hello over the TLS listener ($out)"
else
    fail "a TLS 1.3 client (minimum_version TLSv1_3) gets /hello over the TLS listener: $out"
fi
out=$(tls_get TLSv1_2 TLSv1_2)
if [ "$out" = "TLSv1.2 HTTP/1.1 200 OK" ]; then
    ok "a TLS 1.2 client is served too ($out)"
else
    fail "a TLS 1.2 client is served too: $out"
fi

# Edit the mounted file in place, as an editor saving over it does.
sed -i 's/hello from tandem/hello, edited on the host/' "$work/routes/demo.json"
edited_ok() { [ "$(http "$base_url/hello")" = 200 ] && grep -q "edited on the host" "$work/body"; }
if wait_for 10 "$name" edited_ok; then
    ok "a route file edited on the host is live without a restart"
else
    fail "a route file edited on the host is live without a restart (status $(http "$base_url/hello"): $(oneline 1 <"$work/body" 2>/dev/null))"
fi

st=$(http "$admin_url/admin/system" -H "$auth")
if [ "$st" = 200 ] && grep -q '"version"' "$work/body"; then
    ok "admin API answers with the token (GET /admin/system: 200)"
else
    fail "admin API answers with the token (GET /admin/system: $st)"
fi
st=$(http "$admin_url/admin/system")
if [ "$st" = 401 ]; then
    ok "admin API refuses a request without the token (401)"
else
    fail "admin API refuses a request without the token (got $st, want 401)"
fi
st=$(http "$admin_url/admin/system" -H "Authorization: Bearer wrong-$token")
if [ "$st" = 401 ]; then
    ok "admin API refuses a wrong token (401)"
else
    fail "admin API refuses a wrong token (got $st, want 401)"
fi

# SIGHUP reloads: the route table's last reload (version, time) changes,
# and the gateway keeps serving.
http "$admin_url/admin/routes" -H "$auth" >/dev/null
cp "$work/body" "$work/routes-before" 2>/dev/null || : >"$work/routes-before"
"$engine" kill -s HUP "$name" >/dev/null 2>&1
reloaded() {
    [ "$(http "$admin_url/admin/routes" -H "$auth")" = 200 ] && ! cmp -s "$work/body" "$work/routes-before"
}
serving() { [ "$(http "$base_url/hello")" = 200 ]; }
if running "$name" && [ -s "$work/routes-before" ] && wait_for 10 "$name" reloaded && running "$name" && serving; then
    ok "kill -s HUP reloads the routes and the gateway keeps serving"
elif running "$name" && serving; then
    fail "kill -s HUP reloads the routes: still serving, but GET /admin/routes shows no new reload"
else
    fail "kill -s HUP reloads the routes: the gateway is not serving after SIGHUP"
fi

if [ "$engine" = podman ]; then
    healthy() { podman healthcheck run "$name" >/dev/null 2>&1; }
else
    healthy() { [ "$(docker inspect --format '{{.State.Health.Status}}' "$name" 2>/dev/null)" = healthy ]; }
fi
if wait_for 30 "$name" healthy; then
    ok "HEALTHCHECK reports the container healthy"
else
    fail "HEALTHCHECK reports the container healthy"
fi

# SIGTERM drains and exits 0 within the drain timeout.
was_running=false
running "$name" && was_running=true
t0=$(date +%s%N)
"$engine" kill -s TERM "$name" >/dev/null 2>&1
code=$(timeout $((drain + 5)) "$engine" wait "$name" 2>/dev/null | head -1)
ms=$((($(date +%s%N) - t0) / 1000000))
if $was_running && [ "$code" = 0 ] && [ $ms -le $((drain * 1000)) ]; then
    ok "SIGTERM stops the container with exit code 0 in $ms ms (drain timeout ${drain} s)"
else
    fail "SIGTERM stops the container with exit code 0 within ${drain} s (running before: $was_running, exit ${code:-none}, $ms ms)"
fi

if [ "$failed" -gt 0 ]; then
    note "last lines of the gateway's log:"
    "$engine" logs "$name" 2>&1 | tail -20 | sed 's/^/#    /'
fi
summary
