"""Broaden a narrow pretraining corpus in size: MOSES holds 250-350 Da molecules only, and the
encoder's descriptor readout extrapolates badly outside that range (MolWt r = 0.53 on the test
drugs). This writes a CSV of three equal parts, all drawn from the input corpus with one seed:

- the input molecules themselves;
- small molecules: single BRICS fragments of input molecules, each open bond capped with H;
- large molecules: two input molecules joined by one single bond between two random atoms that
  carry a hydrogen.

No labels are involved: pretraining computes its descriptor and fingerprint targets from these
structures with RDKit, as for any corpus.

    python scripts/make_broad_corpus.py ../shared/data/pretrain/moses_train.csv.gz \
        pretrain-work/broad.csv.gz --n 60000 --seed 3
"""
from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np
from rdkit import Chem, RDLogger
from rdkit.Chem import BRICS

from hsafeat.pretrain.corpus import read_smiles

RDLogger.DisableLog("rdApp.*")
MIN_FRAGMENT_ATOMS = 3


def capped_fragments(mol: Chem.Mol) -> list[str]:
    """BRICS pieces of mol with every dummy atom turned into a hydrogen."""
    out = []
    for piece in Chem.GetMolFrags(BRICS.BreakBRICSBonds(mol), asMols=True):
        rw = Chem.RWMol(piece)
        for atom in rw.GetAtoms():
            if atom.GetAtomicNum() == 0:
                atom.SetAtomicNum(1)
                atom.SetIsotope(0)
        try:
            capped = Chem.RemoveHs(rw.GetMol())
        except Exception:  # noqa: BLE001 - an odd valence after capping: skip the piece
            continue
        if capped.GetNumAtoms() >= MIN_FRAGMENT_ATOMS:
            out.append(Chem.MolToSmiles(capped))
    return out


def joined(a: Chem.Mol, b: Chem.Mol, rng: np.random.Generator) -> str | None:
    """a and b joined by a single bond between a random H-bearing atom of each (None if none)."""
    sites_a = [at.GetIdx() for at in a.GetAtoms() if at.GetTotalNumHs() > 0]
    sites_b = [at.GetIdx() for at in b.GetAtoms() if at.GetTotalNumHs() > 0]
    if not sites_a or not sites_b:
        return None
    i, j = int(rng.choice(sites_a)), a.GetNumAtoms() + int(rng.choice(sites_b))
    rw = Chem.RWMol(Chem.CombineMols(a, b))
    rw.AddBond(i, j, Chem.BondType.SINGLE)
    for idx in (i, j):  # explicit H counts (aromatic [nH]) must drop by the one H replaced
        atom = rw.GetAtomWithIdx(idx)
        if atom.GetNumExplicitHs():
            atom.SetNumExplicitHs(atom.GetNumExplicitHs() - 1)
        atom.SetNoImplicit(False)
    try:
        mol = rw.GetMol()
        Chem.SanitizeMol(mol)
        return Chem.MolToSmiles(mol)
    except Exception:  # noqa: BLE001 - sanitisation refused the join: skip it
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--n", type=int, default=60000, help="molecules in the output (a third of each kind)")
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    third = args.n // 3
    # fragments repeat across molecules (3.6 k distinct from 20 k molecules): they get the biggest share
    source = read_smiles(args.corpus, 6 * args.n, args.seed)
    rng.shuffle(source)
    mols = (Chem.MolFromSmiles(s) for s in source)
    mols = [m for m in mols if m is not None]
    originals = [Chem.MolToSmiles(m) for m in mols[:third]]
    large: list[str] = []
    for k in range(third, 4 * third - 1, 2):
        if len(large) == third:
            break
        s = joined(mols[k], mols[k + 1], rng)
        if s is not None:
            large.append(s)
    seen, small = set(originals), []
    for mol in mols[4 * third:]:
        if len(small) >= third:
            break
        for piece in capped_fragments(mol):
            if piece not in seen:
                seen.add(piece)
                small.append(piece)
    small = small[:third]
    rows = originals + small + large
    rng.shuffle(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(args.out, "wt") as f:
        f.write("SMILES\n")
        f.writelines(s + "\n" for s in rows)
    print(f"wrote {args.out}: {len(originals)} original, {len(small)} fragments, {len(large)} joined")


if __name__ == "__main__":
    main()
