#!/usr/bin/env bash
# The project's one test command, used locally and by CI (.ci/run).
#
#   scripts/test.sh                          # everything
#   scripts/test.sh ./internal/... -run Foo  # packages first, then go test flags
#
# Leading arguments that do not start with "-" are package patterns (default
# ./...) used for both go vet and go test; the remaining arguments go to
# go test after the defaults, so they can override them (e.g. -count=3).
#
# Tests start private MariaDB servers (internal/mariadbtest) and fail rather
# than skip without one, so MariaDB is installed here when missing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v go >/dev/null 2>&1; then
	echo "test.sh: go not found in PATH" >&2
	exit 1
fi

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		echo "test.sh: need root (or sudo) to run: $*" >&2
		return 1
	fi
}

apt_updated=0
apt_install() {
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "test.sh: missing $*, and no apt-get to install it with; install it by hand" >&2
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
# Benchmarks compare against rsync.
if ! have rsync; then
	apt_install rsync
fi
# -race needs cgo, hence a C compiler.
if ! have "$(go env CC)"; then
	apt_install gcc libc6-dev
fi

# Go files to format-check: tracked and not-yet-added ones (so a check before
# committing sees new files too), minus testdata, which the go tool ignores.
go_files() {
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git ls-files --cached --others --exclude-standard -- '*.go' |
			grep -v -e '^testdata/' -e '/testdata/' |
			while IFS= read -r f; do [ -f "$f" ] && printf '%s\n' "$f"; done
	else
		find . -name '*.go' -not -path './.git/*' -not -path '*/testdata/*'
	fi
}
mapfile -t files < <(go_files | sort -u)
if [ "${#files[@]}" -gt 0 ]; then
	unformatted=$(gofmt -l "${files[@]}")
	if [ -n "$unformatted" ]; then
		echo "test.sh: gofmt needed on:" >&2
		echo "$unformatted" >&2
		echo "run: gofmt -w <files>" >&2
		exit 1
	fi
fi

pkgs=()
while [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; do
	pkgs+=("$1")
	shift
done
if [ "${#pkgs[@]}" -eq 0 ]; then
	pkgs=(./...)
fi

go vet "${pkgs[@]}"
go test -race -count=1 -timeout 25m "${pkgs[@]}" "$@"
