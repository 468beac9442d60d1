#!/usr/bin/env bash
# Installs what the sample monolith needs (Nginx, PHP-FPM 8.2, PHP CLI 8.2, and
# for its shared-session backends Redis, memcached and PHP's redis and
# memcached extensions) from Debian, plus wrk and HAProxy with --bench and
# chromium and curl with --browser. Idempotent: does
# nothing when everything is there. As root it installs; otherwise it prints
# the command to run and exits 1.
#
# Only the binaries are used (internal/monolith starts them with its own
# configs); the distribution's nginx and php-fpm services are never started.
set -euo pipefail

usage() { echo "usage: $0 [--bench] [--browser]" >&2; exit 2; }

# "binary package" pairs; a binary is found in PATH or in /usr/sbin, which a
# non-root PATH often lacks. A PHP extension has no binary: its "binary" is
# the .ini file the package installs (an absolute path).
wanted=("nginx nginx-light" "php-fpm8.2 php8.2-fpm" "php8.2 php8.2-cli"
  "redis-server redis-server" "memcached memcached"
  "/etc/php/8.2/mods-available/redis.ini php8.2-redis"
  "/etc/php/8.2/mods-available/memcached.ini php8.2-memcached")
for arg in "$@"; do
  case "$arg" in
    --bench) wanted+=("wrk wrk" "haproxy haproxy") ;;
    # The tests also drive the TLS front door with curl.
    --browser) wanted+=("chromium chromium" "curl curl") ;;
    *) usage ;;
  esac
done

have() {
  case "$1" in
    /*) [ -e "$1" ] ;;
    *) command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ] ;;
  esac
}

missing=()
for w in "${wanted[@]}"; do
  read -r bin pkg <<<"$w"
  have "$bin" || missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all present"
  exit 0
fi

install_cmd="DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing ${missing[*]}. Install them with:" >&2
  echo "  sudo apt-get update && sudo $install_cmd" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "deps: missing ${missing[*]} and no apt-get here; install the equivalent packages by hand" >&2
  exit 1
fi

# policy-rc.d answering 101 tells the packages' maintainer scripts not to
# start their services (the standard Debian mechanism, as in Docker images).
# Leave an existing policy alone.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi

echo "deps: installing ${missing[*]}"
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
