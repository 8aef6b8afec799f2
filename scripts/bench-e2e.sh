#!/usr/bin/env bash
# End-to-end transfer benchmark against one local docker-registry on loopback (issue 7).
#
# Images: "big" = 1 GiB in four incompressible 256 MiB layers; "small50" = 50 layers of ~64 KiB
# (layers are gzip streams of random bytes).
# Measured in alternating runs (RUNS each, default 5), medians and min-max, peak RSS:
#   pull  registry -> OCI layout : our copy example, skopeo copy, an oci-client program
#   push  OCI layout -> registry (a new repository every run) : our copy example, skopeo copy
#   limits: openssl speed sha256, curl of one blob to /dev/null, disk write (4 parallel dd +
#   fdatasync, buffered and O_DIRECT), curl of the small image's 50 blobs; CPU of tool and registry
# Needs: docker-registry skopeo jq curl openssl bc time (Debian packages), cargo.
# Usage: scripts/bench-e2e.sh [RUNS]       ONLY=push scripts/bench-e2e.sh [RUNS]: the pushes alone
# Pushes run twice for oci-rs: as configured by default (a streamed PUT up to 8 MiB, else one
# streamed PATCH and the closing PUT), and with every blob in one streamed PUT (--monolithic-max).
# BASELINE=/path/to/an/earlier/build/of/examples/copy adds that binary as a row of its own to
# every transfer, measured in the same alternating runs (to show a change kept the speed: build
# the earlier commit's copy example in a second worktree with its own CARGO_TARGET_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
runs=${1:-5}
only=${ONLY:-}   # ONLY=push: the push runs alone (the limits are measured all the same)
for t in docker-registry skopeo jq curl openssl bc /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "missing $t: apt-get install docker-registry skopeo jq curl openssl bc time" >&2; exit 1; }
done

echo "building (release)..." >&2
cargo build -q --release --example copy
ours=${CARGO_TARGET_DIR:-$root/target}/release/examples/copy
(cd benches/e2e/oci-client-pull && CARGO_TARGET_DIR=$root/target/e2e cargo build -q --release)
occ=$root/target/e2e/release/oci-client-pull

work=$(mktemp -d /var/tmp/oci-rs-bench.XXXXXX)
reg_pid=""
cleanup() { [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# --- registry on a free loopback port -------------------------------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 35123)
cat > "$work/registry.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/registry}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port, secret: bench}
YML
docker-registry serve "$work/registry.yml" > "$work/registry.log" 2>&1 &
reg_pid=$!
for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
reg=127.0.0.1:$port

# --- images as OCI layouts, pushed once with skopeo ------------------------------------------
# make_layout DIR TAG LAYERS BYTES_PER_LAYER: layers are gzip streams of random bytes, so they
# are incompressible, and skopeo (which gzips any layer it finds uncompressed before a registry
# push) moves them as they are, like the other tools: every tool moves the same bytes.
make_layout() {
  local dir=$1 tag=$2 n=$3 size=$4 layers="" diffs="" i d u lsize
  mkdir -p "$dir/blobs/sha256"
  echo '{"imageLayoutVersion":"1.0.0"}' > "$dir/oci-layout"
  for i in $(seq "$n"); do
    head -c "$size" /dev/urandom > "$dir/raw"
    u=$(sha256sum "$dir/raw" | cut -d' ' -f1)
    gzip -1 -n -c "$dir/raw" > "$dir/tmp"; rm "$dir/raw"
    d=$(sha256sum "$dir/tmp" | cut -d' ' -f1); lsize=$(stat -c %s "$dir/tmp"); mv "$dir/tmp" "$dir/blobs/sha256/$d"
    layers+="${layers:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$d\",\"size\":$lsize}"
    diffs+="${diffs:+,}\"sha256:$u\""
  done
  printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%s]},"config":{}}' "$diffs" > "$dir/tmp"
  local cd cs; cd=$(sha256sum "$dir/tmp" | cut -d' ' -f1); cs=$(stat -c %s "$dir/tmp"); mv "$dir/tmp" "$dir/blobs/sha256/$cd"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' "$cd" "$cs" "$layers" > "$dir/tmp"
  local md ms; md=$(sha256sum "$dir/tmp" | cut -d' ' -f1); ms=$(stat -c %s "$dir/tmp"); mv "$dir/tmp" "$dir/blobs/sha256/$md"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' "$md" "$ms" "$tag" > "$dir/index.json"
}
echo "generating images..." >&2
make_layout "$work/big" latest 4 $((256 << 20))
make_layout "$work/small50" latest 50 $((64 << 10))
clear_skopeo_cache() { rm -f ~/.local/share/containers/cache/blob-info-cache-v1.boltdb /var/lib/containers/cache/blob-info-cache-v1.boltdb; }
for img in big small50; do
  clear_skopeo_cache
  skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$work/$img:latest" "docker://$reg/$img:latest"
done
layers_bytes() { local m; m=$(jq -r '.manifests[0].digest' "$1/index.json" | cut -d: -f2); jq '[.layers[].size] | add' "$1/blobs/sha256/$m"; }
big_bytes=$(layers_bytes "$work/big"); small_bytes=$(layers_bytes "$work/small50")

median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }   # of the numbers on stdin

# --- limits (measured first: a broken setup fails before the long runs) ----------------------
sha=$(openssl speed -bytes 1048576 -seconds 3 sha256 2>/dev/null | awk '/^sha256/ {v=$NF; sub(/k$/,"",v); printf "%d", v*1000/1000000}')
blob=$(jq -r '.layers[0].digest' "$work/big/blobs/sha256/$(jq -r '.manifests[0].digest' "$work/big/index.json" | cut -d: -f2)")
blob_size=$(stat -c %s "$work/big/blobs/sha256/${blob#sha256:}")
curl -fsS -o /dev/null "http://$reg/v2/big/blobs/$blob"   # warm: the registry reads from the page cache
read -r curl_s curl_size <<<"$(curl -fsSL -o /dev/null -w '%{time_total} %{size_download}' "http://$reg/v2/big/blobs/$blob")"
[ "$curl_size" -eq "$blob_size" ] || { echo "curl fetched $curl_size bytes of $blob, not $blob_size" >&2; exit 1; }
# Four writers at once, each 256 MiB then fdatasync: the pattern of a 4-layer pull. Once through
# the page cache and once with O_DIRECT (which is how oci-store writes blob data); the disk's rate
# is the faster of the two (the buffered one is bounded by the kernel's page-cache CPU work).
disk_run() { sync; { /usr/bin/time -f "%e" sh -c 'for i in 1 2 3 4; do dd if=/dev/zero of="$0.$i" bs=4M count=64 $1 conv=fdatasync status=none & done; wait' "$work/dd" "$1"; } 2>&1 | tail -1; rm -f "$work"/dd.*; }
disk_buffered_s=$(disk_run "")
disk_direct_s=$(disk_run "oflag=direct")
disk_s=$(printf '%s\n' "$disk_buffered_s" "$disk_direct_s" | sort -n | head -1)
# The small image's 50 blobs fetched by curl, 16 at a time, to /dev/null (median of 5): what the
# registry needs to serve them, with the least a client can do (no hashing, no files).
small_urls=()
for d in $(jq -r '.layers[].digest' "$work/small50/blobs/sha256/$(jq -r '.manifests[0].digest' "$work/small50/index.json" | cut -d: -f2)"); do
  small_urls+=(-o /dev/null "http://$reg/v2/small50/blobs/$d")
done
for _ in 1 2 3 4 5; do
  /usr/bin/time -f "%e" -a -o "$work/curl-small" curl -fsS --no-progress-meter -Z --parallel-max 16 "${small_urls[@]}"
done
curl_small_s=$(median < "$work/curl-small")

# --- measurement helpers ----------------------------------------------------------------------
# CPU seconds (user + system) the registry process has used so far.
tck=$(getconf CLK_TCK)
registry_cpu() { awk -v t="$tck" '{printf "%.2f", ($14 + $15) / t}' "/proc/$reg_pid/stat"; }
# measure NAME CMD...: runs CMD under /usr/bin/time, appends "seconds rss_kib tool_cpu_s
# registry_cpu_s" to $work/NAME (tool CPU = user + system of the command and its children;
# registry CPU = what the registry used while the command ran).
measure() {
  local name=$1; shift
  sync   # start each run with no dirty pages of the previous one; sources stay in the page cache
  local r0; r0=$(registry_cpu)
  /usr/bin/time -f "%e %M %U %S" -o "$work/time.out" "$@" > "$work/cmd.out" 2>&1 || { echo "FAILED: $*" >&2; cat "$work/cmd.out" >&2; exit 1; }
  local r1; r1=$(registry_cpu)
  awk -v r0="$r0" -v r1="$r1" '{printf "%s %s %.2f %.2f\n", $1, $2, $3 + $4, r1 - r0}' "$work/time.out" >> "$work/$name"
}
stats() { # file -> "median min max rss_max median_tool_cpu median_registry_cpu"
  local c3 c4; c3=$(awk '{print $3}' "$1" | median); c4=$(awk '{print $4}' "$1" | median)
  sort -n "$1" | awk -v c3="$c3" -v c4="$c4" '{t[NR]=$1; if ($2>r) r=$2} END {printf "%.3f %.3f %.3f %d %s %s", t[int((NR+1)/2)], t[1], t[NR], r, c3, c4}'
}
mbps() { echo "scale=0; $1 / $2 / 1000000" | bc -l; }
floor() { echo "scale=3; ($1 + $2) / $(nproc)" | bc -l | sed 's/^\./0./'; }

# Pulls are timed twice over: as the tool returns ("pull"), and until its files are durable
# ("pull+sync": the tool, then sync, in one timed command). oci-rs fsyncs every blob before it
# becomes visible; skopeo and the oci-client program leave dirty pages for the kernel to write
# later, so only the second figure compares like with like on a disk slower than memory.
for i in $(seq "$runs"); do
  echo "run $i/$runs" >&2
  for img in big small50; do
    if [ "$only" != push ]; then
    rm -rf "$work/out"; measure "pull-ours-$img" "$ours" --plain-http "docker://$reg/$img:latest" "oci:$work/out:latest"
    rm -rf "$work/out"; clear_skopeo_cache
    measure "pull-skopeo-$img" skopeo --insecure-policy copy -q --src-tls-verify=false "docker://$reg/$img:latest" "oci:$work/out:latest"
    rm -rf "$work/out"; measure "pull-occ-$img" "$occ" "$reg/$img:latest" "$work/out"
    rm -rf "$work/out"; measure "pull+sync-ours-$img" sh -c '"$@" && sync' _ "$ours" --plain-http "docker://$reg/$img:latest" "oci:$work/out:latest"
    rm -rf "$work/out"; clear_skopeo_cache
    measure "pull+sync-skopeo-$img" sh -c '"$@" && sync' _ skopeo --insecure-policy copy -q --src-tls-verify=false "docker://$reg/$img:latest" "oci:$work/out:latest"
    rm -rf "$work/out"; measure "pull+sync-occ-$img" sh -c '"$@" && sync' _ "$occ" "$reg/$img:latest" "$work/out"
    fi
    measure "push-ours-$img" "$ours" --plain-http "oci:$work/$img:latest" "docker://$reg/ours-$img-$i:latest"
    # The other streamed shape: every blob in one streamed PUT (no PATCH), to compare the two.
    measure "push-put-$img" "$ours" --plain-http --monolithic-max 1GiB "oci:$work/$img:latest" "docker://$reg/put-$img-$i:latest"
    if [ -n "${BASELINE:-}" ]; then
      rm -rf "$work/out"; measure "pull-base-$img" "$BASELINE" --plain-http "docker://$reg/$img:latest" "oci:$work/out:latest"
      rm -rf "$work/out"; measure "pull+sync-base-$img" sh -c '"$@" && sync' _ "$BASELINE" --plain-http "docker://$reg/$img:latest" "oci:$work/out:latest"
      measure "push-base-$img" "$BASELINE" --plain-http "oci:$work/$img:latest" "docker://$reg/base-$img-$i:latest"
    fi
    clear_skopeo_cache
    measure "push-skopeo-$img" skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$work/$img:latest" "docker://$reg/skopeo-$img-$i:latest"
  done
done
rm -rf "$work/out"

# --- results --------------------------------------------------------------------------------
curl_mbps=$(mbps "$blob_size" "$curl_s")
disk_mbps=$(mbps $((1 << 30)) "$disk_s")
disk_buffered_mbps=$(mbps $((1 << 30)) "$disk_buffered_s"); disk_direct_mbps=$(mbps $((1 << 30)) "$disk_direct_s")
limit=$(printf '%s\n' "$sha" "$curl_mbps" "$disk_mbps" | sort -n | head -1)

echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem/ {print $2}') GiB; $runs alternating runs each"
echo "limits: sha256 ${sha} MB/s (openssl speed, 1 MiB blocks), loopback HTTP ${curl_mbps} MB/s (curl one $((blob_size >> 20)) MiB blob), disk write ${disk_mbps} MB/s (4 parallel dd of 256 MiB + fdatasync: ${disk_direct_mbps} MB/s with O_DIRECT, ${disk_buffered_mbps} MB/s through the page cache) => min ${limit} MB/s"
echo "small image floor: curl fetches its 50 blobs (16 at a time, to /dev/null) in ${curl_small_s} s (median of 5)"
echo
echo "CPU columns are medians of CPU seconds (user + system) per transfer: the tool's, and the registry's while it ran."
echo "CPU floor = (tool + registry CPU) / $(nproc) cores: no schedule on this machine finishes sooner."
echo
echo "| transfer | tool | median s (min-max) | MB/s | peak RSS MiB | tool CPU s | registry CPU s | CPU floor s | our speed-up (tool time / our time) |"
echo "|---|---|---|---|---|---|---|---|---|"
dirs="pull pull+sync push"; [ "$only" = push ] && dirs=push
for dir in $dirs; do
  for img in big small50; do
    bytes=$big_bytes; [ "$img" = small50 ] && bytes=$small_bytes
    read -r om omin omax orss ocpu oreg <<<"$(stats "$work/$dir-ours-$img")"
    tools="put skopeo"; [ "$dir" != push ] && tools="skopeo occ"
    [ -n "${BASELINE:-}" ] && tools="base $tools"
    echo "| $dir $img | oci-rs copy | $om ($omin-$omax) | $(mbps "$bytes" "$om") | $((orss / 1024)) | $ocpu | $oreg | $(floor "$ocpu" "$oreg") | 1 |"
    for t in $tools; do
      read -r m mn mx rss cpu reg <<<"$(stats "$work/$dir-$t-$img")"
      name=$t; [ "$t" = occ ] && name="oci-client 0.18"; [ "$t" = base ] && name="oci-rs baseline"; [ "$t" = put ] && name="oci-rs copy, one PUT a blob"
      echo "| $dir $img | $name | $m ($mn-$mx) | $(mbps "$bytes" "$m") | $((rss / 1024)) | $cpu | $reg | $(floor "$cpu" "$reg") | $(echo "scale=2; $m / $om" | bc -l) |"
    done
  done
done
echo
if [ "$only" != push ]; then
echo "pull big vs limit: $(echo "scale=2; $(mbps "$big_bytes" "$(stats "$work/pull-ours-big" | cut -d' ' -f1)") / $limit" | bc -l) of min(sha256, loopback, disk); pull+sync big: $(echo "scale=2; $(mbps "$big_bytes" "$(stats "$work/pull+sync-ours-big" | cut -d' ' -f1)") / $limit" | bc -l)"
read -r pm _ _ _ pc pr <<<"$(stats "$work/pull-ours-big")"
echo "pull big vs its CPU floor on $(nproc) cores: $(floor "$pc" "$pr") s of $pm s = $(echo "scale=2; $(floor "$pc" "$pr") / $pm" | bc -l)"
fi
# Push (issue 17): the registry's CPU per GiB on each tool's push, our peak RSS, the floor.
read -r pbm _ _ pbrss pbc pbr <<<"$(stats "$work/push-ours-big")"
read -r sbm _ _ _ _ sbr <<<"$(stats "$work/push-skopeo-big")"
gib=$(echo "scale=6; $big_bytes / 1073741824" | bc -l)
echo "push big: $(echo "scale=2; $sbm / $pbm" | bc -l)x skopeo; registry CPU per GiB: $(echo "scale=2; $pbr / $gib" | bc -l | sed 's/^\./0./') s serving ours, $(echo "scale=2; $sbr / $gib" | bc -l | sed 's/^\./0./') s serving skopeo's; our peak RSS $((pbrss / 1024)) MiB; CPU floor $(floor "$pbc" "$pbr") s of $pbm s"
read -r psm _ _ _ _ _ <<<"$(stats "$work/push-ours-small50")"
read -r ssm _ _ _ _ _ <<<"$(stats "$work/push-skopeo-small50")"
echo "push small50: $(echo "scale=2; $ssm / $psm" | bc -l)x skopeo"
[ "$only" = push ] && exit 0
read -r sm _ _ _ _ _ <<<"$(stats "$work/pull-skopeo-small50")"
echo "pull small50: 2x skopeo would be $(echo "scale=3; $sm / 2" | bc -l | sed 's/^\./0./') s; curl alone needs ${curl_small_s} s for the blobs"
