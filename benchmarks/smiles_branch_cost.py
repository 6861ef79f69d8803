"""Encoder time per molecule with and without the SMILES branch (docs/DESIGN.md, "SMILES branch").

    OMP_NUM_THREADS=1 python benchmarks/smiles_branch_cost.py DRUGS.smi 500 3

The first N valid molecules of the file, featurized once for each model; two random encoders of
the default sizes (d_model 128, scaffold router) that differ only by the branch (built last, so
their other parameters and hence their routing are equal), each run through the Embedder's
size-bucketed batches on one torch thread. Runs alternate (plain, branch, plain, ...) so load on
the machine hits both alike; one warm-up each is discarded; medians of the repeats and the ratio.
Also the featurization's extra cost: tokenizing the canonical SMILES."""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from hsafeat.chem.features import ATOM_FEATURES, BOND_FEATURES
from hsafeat.chem.featurize import featurize
from hsafeat.chem.smiles_tokens import MAX_LEN, VOCAB_SIZE, smiles_token_ids
from hsafeat.engine import Embedder
from hsafeat.nn.config import EncoderConfig
from hsafeat.nn.encoder import HSAEncoder
from hsafeat.weights import save_weights

VOCAB = ["[UNK]"] + [f"frag{i}" for i in range(2047)]


def encoder(branch: bool) -> HSAEncoder:
    torch.manual_seed(0)
    extra = {"smiles_branch": True, "smiles_vocab": VOCAB_SIZE} if branch else {}
    config = EncoderConfig(atom_vocab=dict(ATOM_FEATURES), bond_vocab=dict(BOND_FEATURES), n_fragments=len(VOCAB),
                           scaffold_router=True, **extra)
    return HSAEncoder(config).eval()


def main() -> None:
    path, n, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(1)
    lines = [line.split()[0] for line in Path(path).read_text().splitlines() if line.strip()]
    plain_feats = featurize(lines[:2 * n], {}, 500)
    keep = [i for i, g in enumerate(plain_feats.graphs) if g is not None][:n]
    smiles = [lines[i] for i in keep]
    plain_feats, branch_feats = featurize(smiles, {}, 500), featurize(smiles, {}, 500, MAX_LEN)
    tmp = Path(tempfile.mkdtemp())
    embedders = {}
    for name, branch in (("plain", False), ("branch", True)):
        save_weights(tmp / name, encoder(branch), VOCAB, 500, {"note": "random, for timing only"})
        embedders[name] = Embedder(str(tmp / name))
    feats = {"plain": plain_feats, "branch": branch_feats}
    times: dict[str, list[float]] = {"plain": [], "branch": []}
    for rep in range(repeats + 1):
        for name in ("plain", "branch"):
            start = time.perf_counter()
            embedders[name].embed_featurized(feats[name])
            if rep > 0:  # the first pass of each warms up
                times[name].append(time.perf_counter() - start)
    canonical = [c for c in branch_feats.canonical if c is not None]
    start = time.perf_counter()
    for c in canonical:
        smiles_token_ids(c)
    tokenize_us = (time.perf_counter() - start) / len(canonical) * 1e6
    ms = {name: statistics.median(t) / len(smiles) * 1e3 for name, t in times.items()}
    ratios = [b / p for p, b in zip(times["plain"], times["branch"], strict=True)]
    n_params = {name: sum(p.numel() for p in e.model.parameters()) for name, e in embedders.items()}
    print(f"{len(smiles)} molecules, {repeats} repeats, torch threads {torch.get_num_threads()}")
    print(f"encoder ms/molecule: plain {ms['plain']:.3f}, branch {ms['branch']:.3f}; ratio of medians "
          f"{ms['branch'] / ms['plain']:.2f}, per-repeat ratios {', '.join(f'{r:.2f}' for r in ratios)}")
    print(f"parameters: plain {n_params['plain']:,}, branch {n_params['branch']:,}")
    print(f"tokenizing the canonical SMILES: {tokenize_us:.1f} us/molecule")


if __name__ == "__main__":
    main()
