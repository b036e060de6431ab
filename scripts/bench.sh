#!/usr/bin/env bash
# Measures seafbak next to cp -a and rsync -a on generated Seafile data and prints the
# figures (see the README's "Performance"). Needs ~6 GiB of disk and 10-20 minutes at
# full size; pass flags to shrink it, e.g. scripts/bench.sh -first-bytes 104857600.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# GNU time measures each command's peak RSS; rsync is the comparison.
for pkg in time rsync; do
  bin=$pkg; [ "$pkg" = time ] && bin=/usr/bin/time
  if ! command -v "$bin" >/dev/null; then
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$pkg"
  fi
done
go build -o "$tmp/seafbak" .
go build -o "$tmp/bench" ./scripts/bench
"$tmp/bench" -seafbak "$tmp/seafbak" "$@"
