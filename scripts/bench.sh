#!/usr/bin/env bash
# Measures seafbak next to cp -a and rsync -a on generated Seafile data and prints the
# figures (wall time, CPU-seconds, peak RSS; see the README's "Performance"). Needs
# ~15 GiB of disk and 15-25 minutes at full size; pass flags to shrink it, e.g.
#   scripts/bench.sh -only first,many -first-bytes 104857600 -many-files 20000
# and -baseline OLD_BINARY to measure an older build beside this one in the same runs.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. scripts/deps.sh
require_go
require_mariadb
require_bench_tools
go build -o "$tmp/seafbak" .
go build -o "$tmp/bench" ./scripts/bench
"$tmp/bench" -seafbak "$tmp/seafbak" "$@"
