#!/usr/bin/env bash
# Measures the recovery point of seafbak watch (polling, or -notify for a notification server too): the time from a library's
# head moving on the primary to the backup's Branch row holding it, over random changes
# to many libraries (see the README's "Performance"). Defaults: 100 libraries, --poll 2s,
# 200 changes a minute for 60 s; e.g. scripts/rpo.sh -poll 500ms -libraries 1000.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. scripts/deps.sh
require_go
require_mariadb
go build -o "$tmp/seafbak" .
go build -o "$tmp/rpo" ./scripts/rpo
"$tmp/rpo" -seafbak "$tmp/seafbak" "$@"
