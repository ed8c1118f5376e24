# Shared by the bench/ scripts (sourced, not run): timing commands with GNU time.
# The caller sets $work (a scratch directory); rows accumulate in $work/rows.

# one_run LOG CMD...: GNU time -v into LOG; exit 1 is a run too (findings, changes)
one_run() {
    local log=$1; shift
    local rc=0
    /usr/bin/time -v -o "$log" "$@" >/dev/null 2>"$work/stderr" || rc=$?
    if [ "$rc" -gt 1 ]; then
        echo "failed ($rc): $*" >&2; tail -5 "$work/stderr" >&2; exit 1
    fi
}
# measure GROUP NAME RUNS CMD...: appends "group<TAB>name<TAB>wall<TAB>cpu<TAB>rss_mb" (median
# wall run; its CPU; the largest peak RSS seen) to $work/rows
measure() {
    local group=$1 name=$2 runs=$3; shift 3
    local i
    : >"$work/runs"
    for i in $(seq "$runs"); do
        one_run "$work/time.$i" "$@"
        awk -F': ' '
            /Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; wall = s }
            /User time/ { u = $2 } /System time/ { sy = $2 }
            /Maximum resident set size/ { rss = $2 / 1024 }
            END { printf "%.3f\t%.3f\t%.1f\n", wall, u + sy, rss }' "$work/time.$i" >>"$work/runs"
    done
    local median rss
    median=$(sort -n -k1,1 "$work/runs" | awk -v n="$runs" 'NR == int((n + 1) / 2)')
    rss=$(sort -n -k3,3 "$work/runs" | tail -1 | cut -f3)
    printf '%s\t%s\t%s\t%s\n' "$group" "$name" "$(cut -f1,2 <<<"$median")" "$rss" >>"$work/rows"
    echo "  $name: $(cut -f1 <<<"$median") s wall, $(cut -f2 <<<"$median") s CPU, $rss MB" >&2
}
