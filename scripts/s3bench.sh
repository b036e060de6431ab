#!/usr/bin/env bash
# Measures seafbak's first backup to S3 next to `rclone copy` of the same storage dir to
# the same S3 server (VersityGW on loopback, started by internal/s3test), then a
# one-file change and verify from S3; prints wall, CPU-seconds and peak RSS of each
# command and the S3 server's CPU-seconds and peak RSS beside them, with the load.
# Default: a 10 000-file, 1 GiB library, 3 runs each (about 10-15 minutes here, ~5 GiB
# of temp disk). Flags go to the benchmark, e.g.
#   scripts/s3bench.sh -files 2000 -bytes 209715200 -runs 1 -changes 3
# (-only first,change,verify chooses the parts).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. scripts/deps.sh
require_go
require_mariadb
require_bench_tools
have rclone || apt_install rclone
go build -o "$tmp/seafbak" .
go test -run '^$' -bench S3FirstBackupVsRclone -benchtime 1x -timeout 3h ./scripts/s3bench -args -seafbak "$tmp/seafbak" "$@"
