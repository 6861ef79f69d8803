"""Regenerate the golden embeddings of the shipped weights (never edit them by hand).

    python scripts/make_golden.py            # default weights
    python scripts/make_golden.py --weights NAME

Writes tests/data/golden/<weights name>.npz: every embedding column of tests/data/drugs.smi,
plus the weights' sha256 so a test can tell stale goldens from a changed model."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hsafeat.engine import Embedder

ROOT = Path(__file__).resolve().parent.parent
MOLECULES = ROOT / "tests/data/drugs.smi"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights")
    a = ap.parse_args()
    smiles = [line.split()[0] for line in MOLECULES.read_text().splitlines() if line.strip()]
    embedder = Embedder(a.weights)
    result = embedder.embed(smiles)
    out = ROOT / "tests/data/golden" / f"{embedder.weights.name}.npz"
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, sha256=np.asarray(embedder.weights.sha256), valid=result.valid,
             gate_probs=result.gate_probs, **result.embeddings)
    print(f"wrote {out} ({len(smiles)} molecules, weights {embedder.weights.name})")


if __name__ == "__main__":
    main()
