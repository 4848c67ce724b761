#!/usr/bin/env bash
# Builds Helio's container image — the Dockerfile's `runtime` stage, exactly —
# from a static binary built here, with buildah: no registry is needed (the
# Dockerfile's `build` stage, which needs the rust image, is replaced by a
# local build context holding what it would produce).
#
#   scripts/image.sh [tag]        # default localhost/helio:dev
#
# Needs: rustup's x86_64-unknown-linux-musl target, musl-gcc (Debian's
# musl-tools), buildah. scripts/test.sh installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-localhost/helio:dev}"

CC_x86_64_unknown_linux_musl=musl-gcc \
  cargo build --locked --profile image --target x86_64-unknown-linux-musl -p helio --bin helio

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
out="$context/build/out"
mkdir -p "$out/config" "$out/data" "$out/tmp" "$out/etc/ssl/certs" "$context/empty"
install -m 0755 target/x86_64-unknown-linux-musl/image/helio "$out/helio"
install -m 0644 /etc/ssl/certs/ca-certificates.crt "$out/etc/ssl/certs/ca-certificates.crt"
chmod 1777 "$out/tmp"
chown 65532:65532 "$out/data"

# Docker format: the OCI format has no HEALTHCHECK.
buildah bud --quiet --format docker --target runtime --build-context "build=$context/build" \
  -f Dockerfile -t "$tag" "$context/empty"
echo "built $tag"
