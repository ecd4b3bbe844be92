#!/usr/bin/env bash
# Builds the frame-decoder libFuzzer target with clang (ASan + UBSan) over the
# library's own decoding sources and runs it for a fixed number of executions
# from a fixed seed. Exits non-zero on a
# crash, a sanitizer report, a leak, an oversized allocation or a slow input;
# the offending input is kept in <scratch>/artifacts and printed in base64.
#
#   bash tests/fuzz/run_fuzz.sh [source_root] [scratch_dir]
#
# Environment: FUZZ_CXX (default clang++), FUZZ_RUNS (default 300000).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "${1:-$here/../..}" && pwd)
scratch=${2:-$(mktemp -d /tmp/procpool-fuzz.XXXXXX)}
cxx=${FUZZ_CXX:-clang++}
runs=${FUZZ_RUNS:-300000}

die() {
  echo "run_fuzz.sh: $*" >&2
  exit 1
}

command -v "$cxx" >/dev/null 2>&1 ||
  die "$cxx not found: the fuzz test needs clang and libFuzzer (Debian: apt-get install clang libclang-rt-14-dev, or run scripts/setup.sh)"

mkdir -p "$scratch"
scratch=$(cd "$scratch" && pwd)

# libFuzzer and the sanitizer runtimes come in a separate package on Debian.
probe="$scratch/probe"
printf '%s\n' '#include <cstddef>' '#include <cstdint>' \
  'extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t*, std::size_t) { return 0; }' >"$probe.cpp"
"$cxx" -fsanitize=fuzzer,address,undefined "$probe.cpp" -o "$probe" >"$probe.log" 2>&1 ||
  die "$cxx cannot link a libFuzzer target with ASan/UBSan (Debian: apt-get install libclang-rt-14-dev, or run scripts/setup.sh):
$(tail -5 "$probe.log")"

# The target and the library sources of both ends' decoding paths (the
# parent's result drain, the worker's task run), all instrumented (coverage
# and sanitizers), built straight from the tree.
binary="$scratch/frame_decoder_fuzz"
sources=(
  tests/fuzz/frame_decoder_fuzz.cpp
  engine/sys/futex.cpp
  engine/sys/fd_passing.cpp
  engine/ipc/ring.cpp
  engine/ipc/side_channel.cpp
  engine/ipc/memfd_store.cpp
  engine/executor/code_ref.cpp
  engine/executor/payload.cpp
  engine/executor/pending_limit.cpp
  engine/executor/result_state.cpp
  serialization/buffer.cpp
  serialization/error_codec.cpp
)
echo "run_fuzz.sh: building $binary with $("$cxx" --version | head -1)"
start=$SECONDS
(cd "$src" && "$cxx" -std=c++20 -O1 -g -fno-omit-frame-pointer -Wall -Wextra \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -Wl,--build-id -I include -I . "${sources[@]}" -o "$binary")
echo "run_fuzz.sh: built in $((SECONDS - start)) s"

# A fresh corpus each time (the checked-in seeds are read, never written), so
# a run is reproducible from -seed alone.
corpus="$scratch/corpus"
artifacts="$scratch/artifacts"
rm -rf "$corpus" "$artifacts"
mkdir -p "$corpus" "$artifacts"
seeds="$src/tests/fuzz/corpus"
[[ -d $seeds ]] || die "seed corpus $seeds is missing (regenerate it with tests/fuzz/make_corpus.py)"

export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0:handle_abort=1:symbolize=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
log="$scratch/fuzz.log"
# max_len: 17 header bytes + the largest ring (4096 bytes); longer inputs add nothing.
echo "run_fuzz.sh: fuzzing for $runs executions (log: $log)"
start=$SECONDS
status=0
"$binary" -runs="$runs" -seed=1 -max_len=4113 -timeout=10 \
  -rss_limit_mb=2048 -malloc_limit_mb=512 -print_final_stats=1 \
  -artifact_prefix="$artifacts/" "$corpus" "$seeds" >"$log" 2>&1 || status=$?
elapsed=$((SECONDS - start))

if ((status != 0)) || ! grep -q "^Done $runs runs" "$log"; then
  grep -v '^"' "$log" | tail -60 >&2
  for f in "$artifacts"/*; do
    [[ -e $f ]] || continue
    echo "run_fuzz.sh: failing input $f (base64):" >&2
    base64 -w0 "$f" >&2
    echo >&2
  done
  die "the fuzzer found a problem (exit status $status after $elapsed s); reproduce with: $binary <input>"
fi
grep -E '^(Done|stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb))' "$log"
echo "run_fuzz.sh: OK, $runs executions in $elapsed s, no crash"
