#!/usr/bin/env bash
# Builds the Cairn container image from a `cairn` binary built on this machine, with no base
# image to pull (the machines Cairn is developed on reach no container registry): the image
# holds the binary, the shared libraries it links as `ldd` lists them, the dynamic loader, a
# passwd entry for the unprivileged user it runs as, and its data directory. Nothing else: no
# shell, no package manager, nothing to patch but Cairn and glibc.
#
#   cargo build --release --bin cairn
#   deploy/docker/build-image.sh                      # tags cairn:local
#   deploy/docker/build-image.sh --binary PATH --tag NAME:TAG
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
binary="${CARGO_TARGET_DIR:-$here/../../target}/release/cairn"
tag="cairn:local"

usage() {
  echo "usage: $0 [--binary PATH] [--tag NAME:TAG]" >&2
  exit 2
}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --binary) [[ $# -ge 2 ]] || usage; binary=$2; shift 2 ;;
    --tag) [[ $# -ge 2 ]] || usage; tag=$2; shift 2 ;;
    -h|--help) usage ;;
    *) echo "error: unknown argument $1" >&2; usage ;;
  esac
done

if [[ ! -x "$binary" ]]; then
  echo "error: no executable cairn binary at $binary; build one first: cargo build --release --bin cairn" >&2
  exit 2
fi
command -v docker >/dev/null || { echo "error: the docker command is not installed" >&2; exit 2; }
command -v ldd >/dev/null || { echo "error: ldd is not installed (it lists the libraries to copy)" >&2; exit 2; }

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
root="$context/rootfs"
mkdir -p "$root/usr/local/bin" "$root/etc" "$root/tmp" "$context/data"
chmod 1777 "$root/tmp"
cp "$binary" "$root/usr/local/bin/cairn"
chmod 0755 "$root/usr/local/bin/cairn"
# The release profile keeps line tables for profiling; the image has no use for them.
if command -v strip >/dev/null; then
  strip --strip-debug "$root/usr/local/bin/cairn"
fi

# ldd prints `name => /path (0x...)` for a library, `/path (0x...)` for the loader, and no
# path for the vDSO. Each file is copied under the path the binary asks for, symlinks resolved.
libraries=$(ldd "$binary") || { echo "error: ldd cannot read $binary (is it a static binary?)" >&2; exit 2; }
if grep -q "not found" <<<"$libraries"; then
  echo "error: $binary links a library this machine lacks:" >&2
  grep "not found" <<<"$libraries" >&2
  exit 2
fi
awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }' <<<"$libraries" | while read -r lib; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done

# The user the broker runs as; 10001 stays clear of the host's system accounts.
printf 'root:x:0:0:root:/:/nonexistent\ncairn:x:10001:10001:cairn:/var/lib/cairn:/nonexistent\n' >"$root/etc/passwd"
printf 'root:x:0:\ncairn:x:10001:\n' >"$root/etc/group"

cp "$here/Dockerfile" "$context/Dockerfile"
docker build --quiet --tag "$tag" "$context" >/dev/null
echo "built $tag"
