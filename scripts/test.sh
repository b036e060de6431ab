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

# shellcheck source=scripts/deps.sh
. scripts/deps.sh
require_go
require_mariadb

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
