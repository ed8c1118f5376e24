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

# report_facts JSON: "RULES<TAB>BASELINE<TAB>ENTRIES" of an agent JSON report: how many rules ran,
# the baseline's name, and how many entries the files family's tree scans walked
report_facts() {
    local rules baseline entries
    rules=$(grep -c '"duration_us"' "$1" || true)
    baseline=$(grep -A1 '"baseline": {' "$1" | grep -o '"name": *"[^"]*"' | sed 's/.*: *//; s/"//g')
    entries=$(grep -o 'in [0-9]* entries' "$1" | head -1 | awk '{print $2}')
    printf '%s\t%s\t%s\n' "$rules" "$baseline" "$entries"
}

# table GROUP REF: GROUP's rows of $work/rows as a Markdown table with a ratio column. REF
# `last`: every row against the last one, the peer ("lynis wall / agent wall"); `first`: every
# row against the first one, the agent ("peer wall / agent wall").
table() {
    local group=$1 ref=$2
    if [ "$ref" = last ]; then
        echo "| command | wall s | CPU s | peak RSS MB | lynis wall / agent wall |"
    else
        echo "| command | wall s | CPU s | peak RSS MB | peer wall / agent wall |"
    fi
    echo "|---|---:|---:|---:|---:|"
    awk -F'\t' -v g="$group" -v ref="$ref" '
        $1 == g { n++; name[n] = $2; wall[n] = $3; cpu[n] = $4; rss[n] = $5 }
        END {
            for (i = 1; i <= n; i++) {
                if (ref == "last")
                    ratio = (i == n) ? "1 (peer)" : (wall[i] > 0 ? sprintf("%.1fx", wall[n] / wall[i]) : "-")
                else
                    ratio = (i == 1) ? "1 (agent)" : (wall[1] > 0 ? sprintf("%.1fx", wall[i] / wall[1]) : "-")
                cell = name[i]; gsub(/\|/, "\\|", cell)
                printf "| %s | %.3f | %.3f | %.1f | %s |\n", cell, wall[i], cpu[i], rss[i], ratio
            }
        }' "$work/rows"
}
