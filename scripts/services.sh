#!/usr/bin/env bash
# Makes sure the services the tests talk to are there:
#   PostgreSQL on 127.0.0.1:5432 with trust auth for user postgres (key store tests);
#   the redis-server binary (the shared-limits test starts and kills its own server);
#   Debian's chromium and chromium-driver (the console's browser tests drive them
#   headless; nothing is downloaded from anywhere but Debian's archive);
#   HAProxy (the fleet chaos test's load balancer), pinned.
# Starts an installed cluster if it is down; installs PostgreSQL from Debian packages
# if it is missing. Safe to run repeatedly.
set -euo pipefail

if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

if ! command -v pg_isready >/dev/null || ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
  echo "installing PostgreSQL from Debian packages" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi

if ! pg_up; then
  version=$(ls /etc/postgresql | sort -V | tail -1)
  conf=/etc/postgresql/$version/main
  # Tests connect over TCP as postgres without a password (a throwaway local cluster).
  if ! grep -q "rampart-tests" "$conf/pg_hba.conf"; then
    $SUDO sed -i '1i host all all 127.0.0.1/32 trust # rampart-tests\nhost all all ::1/128 trust # rampart-tests' "$conf/pg_hba.conf"
  fi
  $SUDO sed -i "s/^#\?listen_addresses.*/listen_addresses = 'localhost'/" "$conf/postgresql.conf"
  echo "starting PostgreSQL $version" >&2
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start || $SUDO pg_ctlcluster "$version" main start
  for _ in $(seq 50); do pg_up && break; sleep 0.2; done
fi

pg_up || { echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }

if ! command -v redis-server >/dev/null; then
  echo "installing Redis from Debian packages" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi
echo "redis-server available: $(redis-server --version | cut -d' ' -f3)" >&2

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  echo "installing chromium and chromium-driver from Debian packages" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi
# The driver must match the browser's major version (Debian ships them together).
browser=$(/usr/bin/chromium --version 2>/dev/null | grep -oE '[0-9]+' | head -1)
driver=$(/usr/bin/chromedriver --version | grep -oE '[0-9]+' | head -1)
if [ "$browser" != "$driver" ]; then
  echo "chromium $browser and chromedriver $driver differ: reinstall both from Debian" >&2
  exit 1
fi
echo "chromium and chromedriver $browser available" >&2

# The fleet chaos test (tests/it/chaos.rs) puts HAProxy in front of three gateways.
HAPROXY_VERSION=2.6.12-1+deb12u4
if ! command -v haproxy >/dev/null; then
  echo "installing haproxy $HAPROXY_VERSION from Debian packages" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "haproxy=$HAPROXY_VERSION" >/dev/null
fi
# Debian's package starts a system haproxy; the tests run their own.
$SUDO systemctl disable --now haproxy >/dev/null 2>&1 || $SUDO service haproxy stop >/dev/null 2>&1 || true
echo "$(haproxy -v | head -1 | cut -d' ' -f1-3) available" >&2

# The probe's transport tests stand up a legacy TLS server with OpenSSL's s_server.
if ! command -v openssl >/dev/null; then
  echo "installing openssl from Debian packages" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq openssl >/dev/null
fi
echo "$(openssl version | cut -d' ' -f1-2) available" >&2
echo "PostgreSQL ready on 127.0.0.1:5432" >&2
