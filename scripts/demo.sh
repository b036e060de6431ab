#!/usr/bin/env bash
# Shows seafbak's main job end to end on a fresh machine, in one command:
#
#   bash scripts/demo.sh
#
# It starts a private MariaDB (no TCP port, removed at the end), generates a
# primary Seafile server (database rows and seafile-data in Seafile's exact
# format), then runs the real seafbak binary against it -- status, scan, a
# change on the primary, sync, status, verify, restore library (compared with
# the primary's files), dump, status --if-changed -- and proves the backup is
# usable by reading the libraries' files back from the backup alone. Extra
# arguments go to the demo program (scripts/demo/main.go).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=scripts/deps.sh
. scripts/deps.sh
require_go
require_mariadb

tmp=$(mktemp -d "${TMPDIR:-/tmp}/seafbak-demo.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "demo.sh: building seafbak and the demo" >&2
go build -o "$tmp/seafbak" .
go build -o "$tmp/demo" ./scripts/demo
# Run from the repository root: the demo finds Seafile's schema by walking up to go.mod.
"$tmp/demo" -seafbak "$tmp/seafbak" -dir "$tmp/work" "$@"
