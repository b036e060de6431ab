# Sourced by scripts/test.sh, demo.sh and bench.sh: installs what they need from
# Debian's packages where it is missing, so a fresh machine (or CI) fails at no
# missing step. Needs root or sudo only when something is missing.

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		echo "$(basename "$0"): need root (or sudo) to run: $*" >&2
		return 1
	fi
}

apt_updated=0
apt_install() {
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "$(basename "$0"): missing $*, and no apt-get to install it with; install it by hand" >&2
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

require_go() {
	if ! command -v go >/dev/null 2>&1; then
		echo "$(basename "$0"): go not found in PATH" >&2
		exit 1
	fi
}

# Tests and the demo start private MariaDB servers and fail rather than skip
# without one.
require_mariadb() {
	if ! have mariadbd || ! have mariadb-install-db; then
		apt_install mariadb-server mariadb-client
	fi
}

# The benchmarks compare with rsync and measure peak RSS with GNU time.
require_bench_tools() {
	have rsync || apt_install rsync
	[ -x /usr/bin/time ] || apt_install time
}
