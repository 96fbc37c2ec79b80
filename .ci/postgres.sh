#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests: installs the server if missing (Debian),
# starts it as the postgres user in a temporary directory on a free loopback port, and prints
# its URL (nothing else on stdout), e.g.
#   export OPENLFR_TEST_POSTGRES_URL="$(.ci/postgres.sh)"
# Stop it with: su postgres -c "pg_ctl -D $DIR stop" (the directory is printed on stderr);
# it also dies with the machine/container, which is what CI wants.
set -euo pipefail

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "installing postgresql" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
fi
BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
DIR="$(mktemp -d /tmp/openlfr-pg.XXXXXX)"

run_as_postgres() {
  if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}
if [ "$(id -un)" != postgres ]; then chown postgres: "$DIR"; fi

run_as_postgres "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust -E UTF8 >/dev/null
run_as_postgres "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w \
  -o "-h 127.0.0.1 -p $PORT -k $DIR -c fsync=off -c full_page_writes=off" start >/dev/null
echo "PostgreSQL running in $DIR on 127.0.0.1:$PORT" >&2
echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/postgres"
