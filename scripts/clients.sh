#!/usr/bin/env bash
# Installs the real client libraries the SDK tests drive (crates/rampart/tests/it/demo.rs),
# at the versions pinned in the repo: the OpenAI Python SDK, LangChain's ChatOpenAI and
# tritonclient[http] (clients/python/requirements.txt, every transitive package pinned)
# into target/clients/venv, and the OpenAI Node SDK (clients/node/package-lock.json)
# into clients/node/node_modules. Installs python3 (with venv) and Node.js from Debian's
# packages when they are missing. Re-running is cheap: a stamp of the pinned files
# skips what is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

command -v python3 >/dev/null || { echo "installing python3" >&2; apt_install python3 python3-venv; }
python3 -c 'import venv, ensurepip' 2>/dev/null || { echo "installing python3-venv" >&2; apt_install python3-venv; }
command -v npm >/dev/null || { echo "installing nodejs and npm" >&2; apt_install nodejs npm; }

venv=target/clients/venv
stamp="$venv/.installed"
want=$(sha256sum clients/python/requirements.txt | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "installing the pinned Python client libraries into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps -r clients/python/requirements.txt
  "$venv/bin/pip" check >/dev/null
  echo "$want" > "$stamp"
fi

nstamp=clients/node/node_modules/.installed
nwant=$(sha256sum clients/node/package-lock.json | cut -d' ' -f1)
if [ "$(cat "$nstamp" 2>/dev/null)" != "$nwant" ]; then
  echo "installing the pinned OpenAI Node SDK into clients/node/node_modules" >&2
  (cd clients/node && npm ci --no-audit --no-fund --loglevel=error)
  echo "$nwant" > "$nstamp"
fi
