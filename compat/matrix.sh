#!/usr/bin/env bash
# make test-compat: one `make test-compat-<minor>` per Airflow minor in COMPAT_VERSIONS, each even if
# an earlier one failed; then each cell's pytest summary and time. Exits non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
versions=(${COMPAT_VERSIONS:-2.11 3.0 3.1 3.2 3.3})
declare -A took result summary
failed=0
start_all=$SECONDS
mkdir -p .compat-logs
for v in "${versions[@]}"; do
    echo "::: make test-compat-$v"
    start=$SECONDS
    if ${MAKE:-make} --no-print-directory "test-compat-$v" 2>&1 | tee ".compat-logs/$v.log"; then
        result[$v]=ok
    else
        result[$v]=FAILED
        failed=1
    fi
    took[$v]=$((SECONDS - start))
    summary[$v]=$(grep -E '^[0-9]+ (passed|failed|skipped|error)|^=+ .* in [0-9.]+s' ".compat-logs/$v.log" | tail -1 | tr -d '=')
done
echo
echo "Compatibility matrix (install + db migrate + pytest; logs in .compat-logs/)"
for v in "${versions[@]}"; do
    printf '  Airflow %-5s %-7s %5ss  %s\n' "$v" "${result[$v]}" "${took[$v]}" "${summary[$v]}"
done
printf '  %-13s %-7s %5ss\n' total "$([ $failed = 0 ] && echo ok || echo FAILED)" "$((SECONDS - start_all))"
exit $failed
