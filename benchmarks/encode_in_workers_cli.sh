#!/bin/bash
# `hsafeat embed` with and without --encode-in-workers, alternating, each under peak_rss.py; then
# checks that the two outputs hold the same values in every column. Prints one line per run:
#   bash benchmarks/encode_in_workers_cli.sh INPUT N_MOLECULES [ROUNDS] > benchmarks/results/encode_in_workers_20k.txt
# INPUT: a CSV (or .csv.gz) whose first column is SMILES, e.g. MOSES's test set.
set -euo pipefail
input=$1; n=$2; rounds=${3:-3}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
{ echo smiles; zcat -f "$input" | sed -n "2,$((n + 1))p" | cut -d, -f1; } > "$work/in.csv"
for r in $(seq 1 "$rounds"); do
  for mode in default eiw; do
    extra=(); [ "$mode" = eiw ] && extra=(--encode-in-workers)
    rm -f "$work/$mode.parquet"   # hsafeat never replaces an existing output
    python benchmarks/peak_rss.py "$work/round${r}_$mode.json" \
      hsafeat embed "$work/in.csv" -o "$work/$mode.parquet" "${extra[@]}" > /dev/null 2>&1
    python - "$work/round${r}_$mode.json" "$n" "round $r $mode" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); p = d["peak_rss_kb_per_process"]
print(sys.argv[3], round(int(sys.argv[2]) / d["elapsed_s"]), "mol/s", round(sum(p.values()) / 1024), "MiB summed",
      sorted(round(v / 1024) for v in p.values()))
PY
  done
done
python - "$work/default.parquet" "$work/eiw.parquet" <<'PY'
import sys, pyarrow.parquet as pq
a, b = pq.read_table(sys.argv[1]), pq.read_table(sys.argv[2])
print("rows", a.num_rows, "columns differing:", [c for c in a.column_names if not a.column(c).equals(b.column(c))] or "none")
PY
