#!/usr/bin/env bash
# Shows seafbak's main job end to end on a fresh machine, in one command:
#
#   bash scripts/demo.sh
#
# It starts a private MariaDB (no TCP port, removed at the end), generates a
# primary Seafile server (database rows and seafile-data in Seafile's exact
# format), then runs the real seafbak binary against it -- status, scan, a
# change on the primary, sync, status -- and proves the backup is usable by
# reading the libraries' files back from the backup alone. Extra arguments
# go to the demo program (scripts/demo/main.go).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v go >/dev/null 2>&1; then
	echo "demo.sh: go not found in PATH" >&2
	exit 1
fi

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		echo "demo.sh: need root (or sudo) to run: $*" >&2
		return 1
	fi
}

apt_updated=0
apt_install() {
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "demo.sh: missing $*, and no apt-get to install it with; install it by hand" >&2
		exit 1
	fi
	if [ "$apt_updated" -eq 0 ]; then
		as_root apt-get update
		apt_updated=1
	fi
	# env, because sudo drops the caller's environment.
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
}

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

if ! have mariadbd || ! have mariadb-install-db; then
	apt_install mariadb-server mariadb-client
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/seafbak-demo.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "demo.sh: building seafbak and the demo" >&2
go build -o "$tmp/seafbak" .
go build -o "$tmp/demo" ./scripts/demo
# Run from the repository root: the demo finds Seafile's schema by walking up to go.mod.
"$tmp/demo" -seafbak "$tmp/seafbak" -dir "$tmp/work" "$@"
