#!/usr/bin/env bash
# Builds Rampart's container image from scratch with podman (Containerfile):
#   scripts/container.sh [TAG]        # default localhost/rampart:<version>
# The context is a root filesystem made here: the release binary in /usr/local/bin
# (its debug line tables stripped),
# the shared libraries ldd names (glibc: its DNS resolver is built in, so upstream
# host names resolve without NSS modules), /etc/passwd and /etc/group with the
# non-root user 65532, and /tmp, /etc/rampart and /var/lib/rampart owned by it.
# Installs podman (and runc: crun cannot run on a host with hybrid cgroups) from
# Debian's packages, pinned, when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PODMAN_DEB=${PODMAN_DEB:-4.3.1+ds1-8+deb12u1+b3}
RUNC_DEB=${RUNC_DEB:-1.1.5+ds1-1+deb12u1}
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
need=()
command -v podman >/dev/null || need+=("podman=$PODMAN_DEB")
command -v runc >/dev/null || need+=("runc=$RUNC_DEB")
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} from Debian packages" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
tag=${1:-localhost/rampart:$version}
cargo build --release -q -p rampart
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
root=$ctx/rootfs
mkdir -p "$root/usr/local/bin" "$root/etc/rampart" "$root/var/lib/rampart" "$root/tmp"
# Without the line tables (100 MB of the release binary): symbol names stay, so a
# panic's backtrace still names its functions.
objcopy --strip-debug target/release/rampart "$root/usr/local/bin/rampart"
# Every library the binary loads, at the path the loader looks for it.
ldd target/release/rampart | grep -oE '/[^ ]+' | while read -r lib; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
printf 'root:x:0:0:root:/:/sbin/nologin\nrampart:x:65532:65532:rampart:/var/lib/rampart:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nrampart:x:65532:\n' >"$root/etc/group"
chown -R 65532:65532 "$root/var/lib/rampart" "$root/etc/rampart"
chmod 1777 "$root/tmp"
cp Containerfile "$ctx/"
podman build -q --label "org.opencontainers.image.version=$version" \
  --label "org.opencontainers.image.title=rampart" \
  --label "org.opencontainers.image.source=$(git remote get-url origin 2>/dev/null || echo local)" \
  -t "$tag" -f "$ctx/Containerfile" "$ctx" >/dev/null
echo "$tag"
