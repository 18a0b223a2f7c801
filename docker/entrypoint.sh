#!/bin/sh
# docker/entrypoint.sh: the image's entrypoint. Runs `tandem` with the
# arguments given; before the gateway starts (or `tandem check` reads the
# configuration) it creates the demo certificate that the shipped
# configuration's TLS listener serves, when there is none yet:
#
#   tandem tls self-signed --name "$TANDEM_TLS_NAMES" --out "$TANDEM_TLS_DIR"
#
# TANDEM_TLS_DIR   where the key and certificate live (default
#                  /var/lib/tandem/tls: the image user's directory, so a
#                  volume there keeps them across restarts); empty: never
#                  create one (your configuration brings its own).
# TANDEM_TLS_NAMES the names it is for, comma-separated (default
#                  localhost,127.0.0.1,::1).
#
# The key is generated in the container at first run: the image carries
# none. A half-present pair (one of the two files) is an error, never
# overwritten.
set -eu

dir=${TANDEM_TLS_DIR-/var/lib/tandem/tls}
case "${1:-}" in
"" | -c* | --config | --config=* | check)
    if [ -n "$dir" ] && [ ! -e "$dir/cert.pem" ] && [ ! -e "$dir/key.pem" ]; then
        tandem tls self-signed --name "${TANDEM_TLS_NAMES:-localhost,127.0.0.1,::1}" \
            --out "$dir" >&2
    fi
    ;;
esac
exec tandem "$@"
