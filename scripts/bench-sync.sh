#!/usr/bin/env bash
# Sync benchmark (issue 15): our sync example vs skopeo, registry -> registry on loopback.
#
#   sync    200 images (40 repositories x 5 tags) sharing 3 base layers (8, 4 and 2 MiB), each
#           with 2 small layers of its own (16 KiB) and its config, from a source registry to an
#           empty destination registry (a new one for every run): our `sync --src yaml` vs
#           `skopeo sync --src yaml --dest docker`, the same YAML file for both.
#   re-run  the same sync again onto the filled destination: nothing to do. Time, and the
#           requests both registries served (counted from their access logs).
#   archive a 1 GiB docker archive (4 incompressible layers of 256 MiB, written by skopeo) pushed
#           to a registry: our copy example (docker-archive:) vs `skopeo copy docker-archive:`.
# Medians (min-max) of RUNS alternating runs (default 3), peak RSS from /usr/bin/time.
# Needs: docker-registry skopeo jq curl python3 bc time (Debian packages), cargo.
# Usage: scripts/bench-sync.sh [RUNS]
# OURS_DIR=DIR uses DIR/sync and DIR/copy instead of building them; OURS_ARGS adds options to our sync.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
runs=${1:-3}
for t in docker-registry skopeo jq curl python3 bc /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "missing $t: apt-get install docker-registry skopeo jq curl python3 bc time" >&2; exit 1; }
done
if [ -n "${OURS_DIR:-}" ]; then
  bin=$OURS_DIR
else
  echo "building (release)..." >&2
  cargo build -q --release -p oci-examples --example sync --example copy
  bin=${CARGO_TARGET_DIR:-$root/target}/release/examples
fi

work=$(mktemp -d /var/tmp/oci-rs-bench-sync.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# start_registry NAME: a registry on a free port with its storage in $work/NAME and its access
# log in $work/NAME.log; sets $reg_addr and $reg_pid.
start_registry() {
  local name=$1 port; port=$(free_port)
  rm -rf "${work:?}/$name"
  cat > "$work/$name.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: false}}
storage: {filesystem: {rootdirectory: $work/$name}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port, secret: bench}
YML
  docker-registry serve "$work/$name.yml" > "$work/$name.log" 2>&1 &
  reg_pid=$!; pids+=("$reg_pid")
  for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
  reg_addr=127.0.0.1:$port
}
stop_registry() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
requests() { grep -c '"[A-Z]* /v2/' "$1" || true; }
clear_skopeo_cache() { rm -f ~/.local/share/containers/cache/blob-info-cache-v1.boltdb /var/lib/containers/cache/blob-info-cache-v1.boltdb; }

# --- the 200 images, as one OCI layout (blobs shared), pushed to the source registry ----------
echo "generating 200 images..." >&2
python3 - "$work/images" <<'PY'
import gzip, hashlib, json, os, sys
root = sys.argv[1]
os.makedirs(f"{root}/blobs/sha256")
def blob(data):
    d = hashlib.sha256(data).hexdigest()
    with open(f"{root}/blobs/sha256/{d}", "wb") as f:
        f.write(data)
    return d
def layer(raw):
    gz = gzip.compress(raw, compresslevel=1, mtime=0)
    return {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": "sha256:" + blob(gz), "size": len(gz)}, "sha256:" + hashlib.sha256(raw).hexdigest()
base = [layer(os.urandom(n << 20)) for n in (8, 4, 2)]
entries = []
for r in range(40):
    for t in range(5):
        own = [layer(os.urandom(16 << 10)) for _ in range(2)]
        layers = base + own
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers]},
                             "config": {"Labels": {"image": f"r{r:02}:t{t}"}}}).encode()
        cd = blob(config)
        m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                   "digest": "sha256:" + cd, "size": len(config)},
                        "layers": [l for l, _ in layers]}).encode()
        entries.append({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": "sha256:" + blob(m), "size": len(m),
                        "annotations": {"org.opencontainers.image.ref.name": f"r{r:02}-t{t}"}})
with open(f"{root}/index.json", "w") as f:
    json.dump({"schemaVersion": 2, "manifests": entries}, f)
with open(f"{root}/oci-layout", "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
PY
start_registry src; src=$reg_addr
for r in $(seq -f %02g 0 39); do for t in 0 1 2 3 4; do
  echo "oci:$work/images:r$r-t$t docker://$src/bench/r$r:t$t"
done; done > "$work/push.list"
"$bin/sync" --quiet --plain-http --images 16 "$work/push.list" > "$work/push.out"
{
  echo "$src:"
  echo "  tls-verify: false"
  echo "  images:"
  for r in $(seq -f %02g 0 39); do echo "    bench/r$r: [t0, t1, t2, t3, t4]"; done
} > "$work/sync.yaml"
image_bytes=$(du -sb "$work/images/blobs" | cut -f1)

# --- the 1 GiB docker archive ----------------------------------------------------------------
echo "generating the 1 GiB archive..." >&2
python3 - "$work/big" <<'PY'
import gzip, hashlib, json, os, sys
root = sys.argv[1]
os.makedirs(f"{root}/blobs/sha256")
def blob(data):
    d = hashlib.sha256(data).hexdigest()
    with open(f"{root}/blobs/sha256/{d}", "wb") as f:
        f.write(data)
    return d
layers, diffs = [], []
for _ in range(4):
    raw = os.urandom(256 << 20)
    gz = gzip.compress(raw, compresslevel=1, mtime=0)
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                   "digest": "sha256:" + blob(gz), "size": len(gz)})
    diffs.append("sha256:" + hashlib.sha256(raw).hexdigest())
    del raw, gz
config = json.dumps({"architecture": "amd64", "os": "linux",
                     "rootfs": {"type": "layers", "diff_ids": diffs}, "config": {}}).encode()
m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": "sha256:" + blob(config), "size": len(config)},
                "layers": layers}).encode()
d = blob(m)
with open(f"{root}/index.json", "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
               "digest": "sha256:" + d, "size": len(m),
               "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}, f)
with open(f"{root}/oci-layout", "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
PY
skopeo --insecure-policy copy -q "oci:$work/big:latest" "docker-archive:$work/big.tar:bench/big:latest"
rm -rf "$work/big"
archive_bytes=$(stat -c %s "$work/big.tar")

# --- measurement helpers ----------------------------------------------------------------------
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
# measure NAME CMD...: appends "seconds rss_kib" to $work/NAME.
measure() {
  local name=$1; shift
  sync
  /usr/bin/time -f "%e %M" -o "$work/time.out" "$@" > "$work/cmd.out" 2>&1 || { echo "FAILED: $*" >&2; tail -20 "$work/cmd.out" >&2; exit 1; }
  cat "$work/time.out" >> "$work/$name"
}
stats() { sort -n "$1" | awk '{t[NR]=$1; if ($2>r) r=$2} END {printf "%.2f %.2f %.2f %d", t[int((NR+1)/2)], t[1], t[NR], r}'; }

# sync_cmd TOOL DST: the command line of one sync onto DST.
sync_cmd() {
  case $1 in
    ours) echo "$bin/sync" ${OURS_ARGS:-} --quiet --src yaml --plain-http --keep-going --report "$work/report.json" "$work/sync.yaml" "docker://$2/mirror" ;;
    skopeo) echo skopeo --insecure-policy sync --src yaml --dest docker --dest-tls-verify=false "$work/sync.yaml" "$2/mirror" ;;
  esac
}

for i in $(seq "$runs"); do
  echo "run $i/$runs" >&2
  for tool in ours skopeo; do
    start_registry "dst-$tool"; dst=$reg_addr; dst_pid=$reg_pid
    clear_skopeo_cache
    # shellcheck disable=SC2046  # paths without spaces (mktemp under /var/tmp)
    measure "sync-$tool" $(sync_cmd "$tool" "$dst")
    if [ "$tool" = ours ]; then
      jq -e '.summary.copied == 200 and .summary.failed == 0' "$work/report.json" >/dev/null || { echo "ours did not copy 200 images" >&2; jq .summary "$work/report.json" >&2; exit 1; }
    fi
    # Every image is there: its manifest answers at the destination.
    for r in 00 17 39; do curl -fsS -o /dev/null -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$dst/v2/mirror/r$r/manifests/t4"; done
    # The re-run: nothing to do; requests served by both registries while it ran.
    s0=$(requests "$work/src.log"); d0=$(requests "$work/dst-$tool.log")
    # shellcheck disable=SC2046
    measure "rerun-$tool" $(sync_cmd "$tool" "$dst")
    s1=$(requests "$work/src.log"); d1=$(requests "$work/dst-$tool.log")
    echo "$((s1 - s0)) $((d1 - d0))" >> "$work/requests-$tool"
    if [ "$tool" = ours ]; then
      jq -e '.summary.present == 200' "$work/report.json" >/dev/null || { echo "ours re-run was not a no-op" >&2; jq .summary "$work/report.json" >&2; exit 1; }
    fi
    stop_registry "$dst_pid"; rm -rf "${work:?}/dst-$tool"
  done
  start_registry arch; arch=$reg_addr; arch_pid=$reg_pid
  measure archive-ours "$bin/copy" --quiet --plain-http "docker-archive:$work/big.tar:bench/big:latest" "docker://$arch/ours:latest"
  clear_skopeo_cache
  measure archive-skopeo skopeo --insecure-policy copy -q --dest-tls-verify=false "docker-archive:$work/big.tar:bench/big:latest" "docker://$arch/skopeo:latest"
  stop_registry "$arch_pid"; rm -rf "${work:?}/arch"
done

# --- results --------------------------------------------------------------------------------
echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $runs alternating runs each"
echo "sync set: 200 images (40 repositories x 5 tags), 3 shared base layers (8+4+2 MiB) + 2 own layers of 16 KiB each; $((image_bytes >> 20)) MiB of distinct blobs"
echo "archive: $((archive_bytes >> 20)) MiB docker archive (4 layers of 256 MiB, written by skopeo)"
echo
echo "| transfer | tool | median s (min-max) | peak RSS MiB | our speed-up (tool time / our time) |"
echo "|---|---|---|---|---|"
for what in sync rerun archive; do
  read -r om omin omax orss <<<"$(stats "$work/$what-ours")"
  read -r sm smin smax srss <<<"$(stats "$work/$what-skopeo")"
  label=$what; [ "$what" = sync ] && label="sync 200 images"; [ "$what" = rerun ] && label="re-run, nothing to do"; [ "$what" = archive ] && label="1 GiB docker-archive -> registry"
  oname="oci-rs sync"; sname="skopeo sync"; [ "$what" = archive ] && { oname="oci-rs copy"; sname="skopeo copy"; }
  echo "| $label | $oname | $om ($omin-$omax) | $((orss / 1024)) | 1 |"
  echo "| $label | $sname | $sm ($smin-$smax) | $((srss / 1024)) | $(echo "scale=2; $sm / $om" | bc -l) |"
done
echo
for tool in ours skopeo; do
  read -r s d <<<"$(tail -1 "$work/requests-$tool")"
  echo "re-run requests ($tool, last run): source registry $s, destination registry $d"
done
