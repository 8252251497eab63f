#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) on the stable toolchain and prints,
# per target, the executions and coverage libFuzzer reports. Exits non-zero on the first
# crash, leaving the input under fuzz/artifacts/TARGET/ (copy it to fuzz/regressions/TARGET/
# once fixed, so that plain `cargo test` replays it).
#
#   cargo install cargo-fuzz     # once
#   fuzz/run.sh 600              # ten minutes per target
#   fuzz/run.sh 60 bgp_update    # one target
#
# Stable works because the targets are built without a sanitizer (-s none): libFuzzer's
# coverage instrumentation needs only stable codegen flags. With a nightly toolchain,
# `cargo +nightly fuzz run TARGET` adds AddressSanitizer.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH="${1:-60}"
shift || true
targets="${*:-$(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^lb-fuzz$')}"
cargo +stable fuzz build -O -s none >/dev/null
printf '%-18s %12s %8s %8s %10s\n' target executions cov ft corpus
for t in $targets; do
    mkdir -p "corpus/$t"
    log=$(mktemp)
    # -rss_limit_mb and -malloc_limit_mb: an input that makes lb allocate without bound fails.
    if ! cargo +stable fuzz run -O -s none "$t" -- -max_total_time="$SECONDS_EACH" -rss_limit_mb=1024 \
            -malloc_limit_mb=512 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        tail -40 "$log"
        echo "fuzz target $t failed: see fuzz/artifacts/$t/" >&2
        exit 1
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$last")
    printf '%-18s %12s %8s %8s %10s\n' "$t" "$execs" "$cov" "$ft" "$corp"
    rm -f "$log"
done
