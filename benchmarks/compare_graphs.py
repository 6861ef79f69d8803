"""The graphs two checkouts of hsafeat build for the same molecules, compared molecule by molecule.

    git worktree add /tmp/old <commit>
    python benchmarks/compare_graphs.py /tmp/old . ../shared/data/moleculenet/*.csv.gz \\
        ../shared/data/pretrain/moses_test.csv.gz

Each checkout featurizes every molecule as its embed path does (`featurize_one`'s graph and the
fragment names) with the default weights' vocabulary, in file order, and writes one line per
molecule: a hash of every graph array except the fragment ids, the ids, the names. Prints how many
molecules differ in the arrays, in the names' spelling and in the ids, and the fragment changes
behind the id differences, grouped. Used in session 9 for the fragment-name fix (BENCHMARKS.md)."""
from __future__ import annotations

import collections
import os
import subprocess
import sys
import tempfile
from pathlib import Path

DUMP = r'''
import csv, gzip, hashlib, sys
from rdkit import RDLogger
RDLogger.DisableLog("rdApp.*")
from hsafeat.chem.graph import mol_to_graph_and_fragments
from hsafeat.chem.parse import parse_smiles
from hsafeat.engine import Embedder
import hsafeat.chem.featurize as fz
vocab = Embedder().vocab
names = getattr(fz, "FRAGMENT_NAMES", None)          # the name memory, where the checkout has one
shortcuts = names is not None
if shortcuts:
    from hsafeat.chem.fragment_names import keyable
    from hsafeat.chem.parse import may_carry_stereo
with open(sys.argv[1], "w") as out:
    for path in sys.argv[2:]:
        with gzip.open(path, "rt") if path.endswith(".gz") else open(path) as f:
            reader = csv.reader(f)
            column = [i for i, h in enumerate(next(reader)) if h.lower() in ("smiles", "mol")][0]
            for row in reader:
                if not row:
                    continue
                s = row[column]
                mol = parse_smiles(s).mol
                if mol is None:
                    out.write("invalid\n")
                    continue
                if shortcuts:
                    g, frags = mol_to_graph_and_fragments(mol, vocab, may_carry_stereo(s), names if keyable(s) else None)
                else:
                    g, frags = mol_to_graph_and_fragments(mol, vocab)
                h = hashlib.sha1()
                for k in g.__dataclass_fields__:
                    if k != "frag_ids":
                        a = getattr(g, k)
                        h.update(k.encode() + str(a.shape).encode() + a.tobytes())
                out.write(h.hexdigest()[:16] + "\t" + ",".join(map(str, g.frag_ids.tolist())) + "\t" + "|".join(frags) + "\n")
'''


def dump(checkout: Path, files: list[str], out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(checkout.resolve())}
    return subprocess.Popen([sys.executable, "-c", DUMP, str(out), *[str(Path(f).resolve()) for f in files]],
                            cwd=tempfile.gettempdir(), env=env)


def kind(old_name: str, old_id: str, new_id: str) -> str:
    if old_id != "0" and new_id != "0":
        return "one fragment's two ids merged"
    if old_id == "0":
        return "stereo mark dropped, now found" if any(c in old_name for c in "@/\\") else "was UNK, now found"
    return "was found, now UNK"


def main() -> None:
    old, new, files = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    with tempfile.TemporaryDirectory() as d:
        outs = [Path(d) / "old.tsv", Path(d) / "new.tsv"]
        procs = [dump(old, files, outs[0]), dump(new, files, outs[1])]   # one core each
        if any(p.wait() for p in procs):
            sys.exit("a checkout failed to featurize")
        a, b = (o.read_text().splitlines() for o in outs)
    valid = arrays = spelling = ids = 0
    kinds: collections.Counter[str] = collections.Counter()
    changes: collections.Counter[tuple[str, str, str, str]] = collections.Counter()
    for x, y in zip(a, b):
        if x == "invalid" or y == "invalid":
            assert x == y, "the checkouts disagree on validity"
            continue
        valid += 1
        (hx, ix, nx), (hy, iy, ny) = x.split("\t"), y.split("\t")
        arrays += hx != hy
        spelling += nx != ny
        if ix != iy:
            ids += 1
            diffs = [(p, u, q, v) for p, q, u, v in zip(nx.split("|"), ny.split("|"), ix.split(","), iy.split(",")) if u != v]
            kinds.update({kind(p, u, v) for p, u, _, v in diffs})
            changes.update(diffs)
    print(f"{len(a)} rows, {valid} valid: graph arrays differ for {arrays}, fragment spellings for {spelling}, "
          f"fragment ids for {ids}")
    for k, n in kinds.most_common():
        print(f"  {n:7d} molecules: {k}")
    print("most frequent changes (old name, old id, new name, new id):")
    for change, n in changes.most_common(10):
        print(f"  {n:7d} {change}")


if __name__ == "__main__":
    main()
