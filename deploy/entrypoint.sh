#!/bin/sh
# The image's entrypoint. With no arguments, or only options: `ige serve` with the roles of
# IGE_ROLES (api, stream, worker, comma-separated; default all three) on IGE_HOST (0.0.0.0),
# IGE_PORT (8000), with IGE_WORKERS (1) processes; options are passed on (--role api).
# Anything else is run as it is: `ige migrate`, `ige admin create-bank CODE NAME`.
set -eu
if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
  exec ige serve --host "${IGE_HOST:-0.0.0.0}" --port "${IGE_PORT:-8000}" \
    --workers "${IGE_WORKERS:-1}" "$@"
fi
exec "$@"
