#!/usr/bin/env bash
# Pieces benchmark (issue 13): a 1 GiB image (four incompressible 256 MiB layers, made as
# scripts/bench-e2e.sh makes its "big" image) pulled into a fresh OCI layout with the release
# `copy` example, in one run, side by side:
#   single      from one registry (the origin alone)
#   three       from three loopback registries holding the same repository (--mirror twice)
#   two         from two healthy registries (the origin and one mirror)
#   throttled   the same two plus a third reached through a proxy throttled to THROTTLE_MBS
#               MB/s (default 20): the pull should stay within 1.2x of "two"
#   three_maps  "three" for a repository whose origin holds the piece-map artifact pushed by
#               `copy --piece-maps`: every piece hashed and checked as it arrives (the map is
#               advisory, from the registry; a trusted map costs the same hashing); target
#               under 1.4x "single"
#   corrupt     the origin and a mirror whose stored copy of one layer has a byte flipped on
#               disk (last: it changes that mirror): completes, bytes fetched twice reported
#   skopeo      skopeo copy from the origin (for scale), and from the corrupt mirror (fails:
#               shown, not timed)
# Medians of RUNS alternating runs (default 3), min-max, peak RSS (/usr/bin/time -f '%e %M').
# Needs: docker-registry skopeo jq python3 time setpriv (Debian packages), cargo.
# Usage: scripts/bench-pieces.sh [RUNS]   (OURS=/path/to/copy skips the build; LAYER_MIB=16 for
# a smoke run; THROTTLE_MBS=20)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
runs=${1:-3}
for t in docker-registry skopeo jq python3 /usr/bin/time setpriv sha256sum gzip; do
  command -v "$t" >/dev/null || { echo "missing $t: apt-get install docker-registry skopeo jq python3 time util-linux coreutils gzip" >&2; exit 1; }
done
if [ -z "${OURS:-}" ]; then
  echo "building (release)..." >&2
  cargo build -q --release -p oci-examples --example copy
fi
ours=${OURS:-${CARGO_TARGET_DIR:-$root/target}/release/examples/copy}
layer_mib=${LAYER_MIB:-256}
throttle=${THROTTLE_MBS:-20}

work=$(mktemp -d /var/tmp/oci-rs-bench-pieces.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
export HOME=$work/home   # skopeo's blob-info cache stays out of the way
mkdir -p "$HOME"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_registry() { # NAME -> sets addr=127.0.0.1:PORT (not in a subshell: the registry dies with its parent)
  local name=$1 port; port=$(free_port)
  mkdir -p "$work/$name/storage"
  cat > "$work/$name/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/$name/storage
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: bench
EOF
  setpriv --pdeathsig SIGKILL -- docker-registry serve "$work/$name/config.yml" > "$work/$name/log" 2>&1 &
  pids+=($!)
  for _ in $(seq 200); do
    python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/v2/')" 2>/dev/null && break
    sleep 0.1
  done
  addr=127.0.0.1:$port
}
start_registry origin; r1=$addr
start_registry mirror1; r2=$addr
start_registry mirror2; r3=$addr

# A TCP proxy in front of mirror2 moving at most THROTTLE_MBS MB/s in all (a token bucket
# shared by its connections), as a slow mirror would.
tport=$(free_port)
setpriv --pdeathsig SIGKILL -- python3 - "$tport" "${r3#*:}" "$throttle" > "$work/proxy.log" 2>&1 <<'PY' &
import asyncio, sys, time
listen, target, mbs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
rate = mbs * 1e6
state = {"t": time.monotonic(), "tokens": 0.0}
async def take(n):
    while True:
        now = time.monotonic()
        state["tokens"] = min(rate * 0.05, state["tokens"] + (now - state["t"]) * rate)
        state["t"] = now
        if state["tokens"] >= n:
            state["tokens"] -= n
            return
        await asyncio.sleep((n - state["tokens"]) / rate)
async def pipe(r, w, throttled):
    try:
        while data := await r.read(16384):
            if throttled:
                await take(len(data))
            w.write(data)
            await w.drain()
    finally:
        w.close()
async def serve(cr, cw):
    ur, uw = await asyncio.open_connection("127.0.0.1", target)
    await asyncio.gather(pipe(cr, uw, False), pipe(ur, cw, True), return_exceptions=True)
async def main():
    s = await asyncio.start_server(serve, "127.0.0.1", listen)
    async with s:
        await s.serve_forever()
asyncio.run(main())
PY
pids+=($!)
rslow=127.0.0.1:$tport

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
echo "generating the image and pushing it to three registries..." >&2
make_layout "$work/big" latest 4 $((layer_mib << 20))
man=$(jq -r '.manifests[0].digest' "$work/big/index.json" | cut -d: -f2)
bytes=$(jq '[.layers[].size] | add' "$work/big/blobs/sha256/$man")
first_layer=$(jq -r '.layers[0].digest | sub("sha256:"; "")' "$work/big/blobs/sha256/$man")
for r in "$r1" "$r2" "$r3"; do
  "$ours" -q --plain-http "oci:$work/big:latest" "docker://$r/bench/app:latest" >/dev/null
done
# The same image in bench/mapped, the origin's copy with its piece-map artifact.
"$ours" -q --plain-http --piece-maps "oci:$work/big:latest" "docker://$r1/bench/mapped:latest" >/dev/null
for r in "$r2" "$r3"; do
  "$ours" -q --plain-http "oci:$work/big:latest" "docker://$r/bench/mapped:latest" >/dev/null
done

median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
minmax() { sort -n | awk 'NR==1 {a=$1} {b=$1} END {printf "%s-%s", a, b}'; }
# timed NAME CMD...: appends "seconds kib" to $work/NAME; stdout to $work/NAME.out
timed() { local n=$1; shift; rm -rf "$work/out"; /usr/bin/time -o "$work/t" -f '%e %M' "$@" > "$work/$n.out"; cat "$work/t" >> "$work/$n"; rm -rf "$work/out"; }
src="docker://$r1/bench/app:latest"; dst="oci:$work/out:latest"

for k in $(seq "$runs"); do
  echo "run $k/$runs" >&2
  timed single "$ours" -q --plain-http "$src" "$dst"
  timed three "$ours" -q --plain-http --mirror "$r2" --mirror "$r3" "$src" "$dst"
  timed three_maps "$ours" -q --plain-http --mirror "$r2" --mirror "$r3" "docker://$r1/bench/mapped:latest" "$dst"
  timed two "$ours" -q --plain-http --mirror "$r2" "$src" "$dst"
  timed throttled "$ours" -q --plain-http --mirror "$r2" --mirror "$rslow" "$src" "$dst"
  timed skopeo_single skopeo --insecure-policy copy --src-tls-verify=false "docker://$r1/bench/app:latest" "oci:$work/out:latest"
done
# The corrupt mirror (last: it changes mirror1's storage).
f=$work/mirror1/storage/docker/registry/v2/blobs/sha256/${first_layer:0:2}/$first_layer/data
python3 - "$f" <<'PY'
import sys
p = sys.argv[1]
with open(p, "r+b") as f:
    f.seek(1000); b = f.read(1); f.seek(1000); f.write(bytes([b[0] ^ 0xff]))
PY
for k in $(seq "$runs"); do
  timed corrupt "$ours" -q --plain-http --mirror "$r2" "$src" "$dst"
done
skopeo_bad=$(skopeo --insecure-policy copy --src-tls-verify=false "docker://$r2/bench/app:latest" "oci:$work/skopeo-bad:latest" 2>&1 >/dev/null && echo "skopeo SUCCEEDED (unexpected)" || true)

row() { # NAME LABEL BASE: median s, min-max s, MiB/s, x BASE, peak RSS MiB
  local s mb r b
  s=$(cut -d' ' -f1 "$work/$1" | median)
  b=$(cut -d' ' -f1 "$work/$3" | median)
  mb=$(awk -v b="$bytes" -v s="$s" 'BEGIN {printf "%.0f", b/1048576/s}')
  r=$(cut -d' ' -f2 "$work/$1" | sort -n | tail -1)
  printf '| %s | %s | %s | %s | %s | %s |\n' "$2" "$s" "$(cut -d' ' -f1 "$work/$1" | minmax)" "$mb" \
    "$(awk -v a="$s" -v b="$b" 'BEGIN {printf "%.2f", a/b}')" "$((r / 1024))"
}
echo
echo "Image of 4 x $layer_mib MiB incompressible layers ($bytes bytes), docker-registry $(dpkg-query -W -f '${Version}' docker-registry 2>/dev/null) on loopback, throttled mirror at $throttle MB/s, $runs runs, $(nproc) CPUs"
echo
echo '| pull into a layout | median s | min-max s | MiB/s | x base | peak RSS MiB |'
echo '|---|---|---|---|---|---|'
row single 'ours: one registry (base)' single
row three 'ours: three registries (--mirror x2)' single
row three_maps 'ours: three registries, piece maps from the artifact (hashing on)' single
row skopeo_single 'skopeo: one registry' single
row two 'ours: two healthy registries (base of the next)' two
row throttled "ours: the two + one throttled to $throttle MB/s" two
row corrupt 'ours: origin + a mirror with one flipped byte' single
echo
echo "three_maps, last run: $(grep -c '^  piece map of .*: advisory, from artifact' "$work/three_maps.out") layer maps used, $(grep -c 'dropped during the fetch' "$work/three_maps.out") dropped"
echo "corrupt mirror, last run's summary lines about pieces:"
grep -E 'fetched in pieces|    .*: .* kept|bad piece' "$work/corrupt.out" | sed 's/^/    /'
echo "skopeo copy from the corrupt mirror: ${skopeo_bad:-no error?}"
