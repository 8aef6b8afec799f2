#!/usr/bin/env bash
# SHA-256 of a file: `digest` example vs `openssl dgst -sha256`, alternating runs on the same file,
# medians and min-max, plus peak RSS (from /usr/bin/time -v) at two file sizes to show that memory
# does not grow with the file. Usage: scripts/bench-digest.sh [RUNS] [SIZE_MIB]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-7}; size_mib=${2:-1024}
command -v /usr/bin/time >/dev/null || { echo "install GNU time: apt-get install time" >&2; exit 1; }
cargo build -q --release --example digest
bin=target/release/examples/digest
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
head -c $((size_mib << 20)) /dev/urandom > "$dir/big"
head -c $((16 << 20)) /dev/urandom > "$dir/small"
cat "$dir/big" > /dev/null   # warm the page cache: both tools read from memory

now() { date +%s.%N; }
ours=(); ossl=()
for _ in $(seq "$runs"); do
  a=$(now); "$bin" "$dir/big" > /dev/null; b=$(now)
  openssl dgst -sha256 "$dir/big" > /dev/null; c=$(now)
  ours+=("$(echo "$b - $a" | bc -l)"); ossl+=("$(echo "$c - $b" | bc -l)")
done
# Same answer from both.
[ "$("$bin" "$dir/big" | cut -d' ' -f1 | cut -d: -f2)" = "$(openssl dgst -sha256 -r "$dir/big" | cut -d' ' -f1)" ] || { echo "digests differ!" >&2; exit 1; }
stats() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {printf "%.3f %.3f %.3f", v[int((NR+1)/2)], v[1], v[NR]}'; }
read -r om omin omax <<<"$(stats "${ours[@]}")"
read -r sm smin smax <<<"$(stats "${ossl[@]}")"
mb() { echo "scale=0; $size_mib * 1048576 / $1 / 1000000" | bc -l; }
rss() { /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F: '/Maximum resident/ {gsub(/ /,"",$2); print $2}'; }
echo "file: ${size_mib} MiB, ${runs} alternating runs; CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); sha_ni: $(grep -q sha_ni /proc/cpuinfo && echo yes || echo no)"
echo "digest example : median ${om}s (min ${omin}, max ${omax}) = $(mb "$om") MB/s"
echo "openssl dgst   : median ${sm}s (min ${smin}, max ${smax}) = $(mb "$sm") MB/s"
echo "ratio (openssl time / our time, >= 0.95 wanted): $(echo "scale=3; $sm / $om" | bc -l)"
echo "peak RSS: 16 MiB file $(rss "$bin" "$dir/small") KiB, ${size_mib} MiB file $(rss "$bin" "$dir/big") KiB"
