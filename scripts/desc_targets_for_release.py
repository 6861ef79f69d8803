"""Write weights/<name>/desc_targets.json: the means and standard deviations that turned a
release's RDKit descriptors into the standardised targets its `desc_pred` readout predicts, so
that `desc_units="real"` can give descriptors back in their own units (value * std + mean).

The statistics are rebuilt, after the release, by the code that made the targets
(hsafeat.pretrain.corpus: read_smiles's seeded subset, parse_smiles, RDKit's descList,
standardise_descriptors) on the molecules the release's corpus cache held:

    # hsanet-moses-v2.1: its stage-C head was trained on a 50,000-molecule MOSES subset, seed 1
    python scripts/desc_targets_for_release.py --weights hsanet-moses-v2.1 \
        --corpus ../shared/data/pretrain/moses_train.csv.gz --n 50000 --seed 1
    # hsanet-moses-v2.2: its readout was fitted on the size-broadened corpus (all of it)
    python scripts/make_broad_corpus.py ../shared/data/pretrain/moses_train.csv.gz \
        pretrain-work/broad.csv.gz --n 60000 --seed 3
    python scripts/desc_targets_for_release.py --weights hsanet-moses-v2.2 --corpus pretrain-work/broad.csv.gz \
        --gzip-mtime 2026-12-02T00:55:56+00:00

The script checks that standardising with the statistics it writes gives exactly what
standardise_descriptors gives, that the corpus file is the one the card records (a regenerated .gz
differs only in the write time gzip keeps in its header: --gzip-mtime sets it for the comparison),
and that the descriptors it keeps (not constant on the corpus) are the readout's outputs, in order.
Descriptors take ~20 ms per molecule on one core: --raw keeps them in an .npz so a second run
skips that step.

--check FILE[:SMILES_COLUMN] ... verifies a written file instead: desc_pred in real units against
RDKit's exact values of simple descriptors (Pearson r, slope of prediction on exact value, mean
bias), on the molecules of those files:

    python scripts/desc_targets_for_release.py --weights hsanet-moses-v2.2 --check tests/data/drugs.smi \
        ../shared/data/moleculenet/BBBP.csv.gz ../shared/data/moleculenet/bace.csv.gz:mol"""
from __future__ import annotations

import argparse
import hashlib
import json
import struct
import sys
import time
from datetime import datetime
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import rdkit

from hsafeat.chem.parse import parse_smiles
from hsafeat.hashing import sha256_file
from hsafeat.pretrain.corpus import _descriptor, descriptor_names, read_smiles, standardise_descriptors
from hsafeat.weights import DESC_TARGETS_FILE, load_weights

TRANSFORM = (
    "each descriptor of RDKit's Descriptors.descList (RDKit {rdkit}) was computed on every corpus molecule that "
    "parses; non-finite values were left out of the statistics (their target was 0); values were clipped to their "
    "0.5 and 99.5 % corpus quantiles, standardised as (x - mean) / std with the mean and population std of the "
    "clipped values, and the result clipped to [-5, 5] (hsafeat.pretrain.corpus.standardise_descriptors); "
    "descriptors constant after clipping were dropped. Real units: value * std + mean. The readout never saw a "
    "target outside the quantile range, so values far outside the corpus's range are underestimated in size"
)


def raw_descriptors(smiles: list[str], workers: int) -> tuple[list[str], np.ndarray]:
    """(the SMILES that parse, n x len(descList) float64), as the corpus step computes them."""
    with Pool(workers) as pool:
        rows = pool.map(_one, smiles, chunksize=256)
        pool.close()
        pool.join()
    kept = [(s, d) for s, d in zip(smiles, rows, strict=True) if d is not None]
    return [s for s, _ in kept], np.stack([d for _, d in kept])


def _one(smiles: str) -> np.ndarray | None:
    mol = parse_smiles(smiles).mol
    if mol is None:
        return None
    return np.asarray([_descriptor(name, mol) for name in descriptor_names("v2")], dtype=np.float64)


def statistics(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, std, keep) exactly as standardise_descriptors computes them (checked by the caller)."""
    x = np.where(np.isfinite(raw), raw, np.nan)
    x = np.clip(x, np.nanquantile(x, 0.005, axis=0), np.nanquantile(x, 0.995, axis=0))
    mean, std = np.nanmean(x, 0), np.nanstd(x, 0)
    return mean, std, std > 1e-8


def check_same_targets(raw: np.ndarray, mean: np.ndarray, std: np.ndarray, keep: np.ndarray) -> None:
    """Standardising with (mean, std) must reproduce the training targets bit for bit."""
    expected, expected_keep = standardise_descriptors(raw)
    x = np.where(np.isfinite(raw), raw, np.nan)
    x = np.clip(x, np.nanquantile(x, 0.005, axis=0), np.nanquantile(x, 0.995, axis=0))[:, keep]
    ours = np.clip(np.nan_to_num((x - mean[keep]) / std[keep], nan=0.0), -5, 5).astype(np.float32)
    if not (np.array_equal(expected_keep, keep) and np.array_equal(expected, ours)):
        sys.exit("the statistics do not reproduce standardise_descriptors: fix this script before using it")


def corpus_identity(corpus: Path, recorded: str, gzip_mtime: str | None) -> str:
    """The corpus file's sha256 and whether it is the file the release's card recorded."""
    digest = sha256_file(corpus)
    said = f"corpus {corpus.name} (sha256 {digest})"
    if digest == recorded:
        return f"{said}, the file the release's card records"
    if gzip_mtime is None:
        return f"{said}; the release's card records sha256 {recorded} for its corpus (not compared)"
    data = bytearray(corpus.read_bytes())
    data[4:8] = struct.pack("<I", int(datetime.fromisoformat(gzip_mtime).timestamp()))
    if hashlib.sha256(data).hexdigest() != recorded:
        sys.exit(f"{corpus} with gzip time {gzip_mtime} is not the corpus the card records ({recorded})")
    return (f"{said}; with the write time in its gzip header set to {gzip_mtime} its sha256 is {recorded}, "
            "the one the release's card records: the same file")


CHECKED = ("MolWt", "HeavyAtomCount", "TPSA", "MolLogP", "NumHDonors", "RingCount")


def check(weights_name: str, files: list[str], limit: int | None) -> None:
    """Print r, slope and bias of real-unit predictions against RDKit, per file and over all."""
    from rdkit.Chem import Descriptors

    from hsafeat.engine import Embedder
    from hsafeat.io import open_input

    embedder = Embedder(weights_name, desc_units="real")
    names = list(embedder.weights.config.readout_descriptors)
    pooled: dict[str, list[np.ndarray]] = {name: [] for name in CHECKED}
    for spec in files:
        path, _, column = spec.partition(":") if not Path(spec).exists() else (spec, "", "")
        smiles = [r.smiles for r in open_input(path, smiles_column=column or None).rows()][:limit]
        result = embedder.embed(smiles)
        mols = [parse_smiles(s).mol for s, ok in zip(smiles, result.valid, strict=True) if ok]
        pred = result.embeddings["desc_pred"][result.valid]
        for name in CHECKED:
            pair = np.stack([[getattr(Descriptors, name)(m) for m in mols], pred[:, names.index(name)]], axis=1)
            pooled[name].append(pair)
            print(json.dumps({"file": Path(path).name, "n": len(mols), **_agreement(name, pair)}), flush=True)
    for name in CHECKED:
        print(json.dumps({"file": "all", **_agreement(name, np.concatenate(pooled[name]))}))


def _agreement(name: str, pair: np.ndarray) -> dict:
    exact, pred = pair[:, 0], pair[:, 1]
    return {"descriptor": name, "r": round(float(np.corrcoef(exact, pred)[0, 1]), 4),
            "slope": round(float(np.polyfit(exact, pred, 1)[0]), 4), "bias": round(float(np.mean(pred - exact)), 4),
            "exact_mean": round(float(exact.mean()), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True, help="released weights with a descriptor readout (name or directory)")
    ap.add_argument("--corpus", type=Path, help="the corpus file the release's cache was made from")
    ap.add_argument("--n", type=int, help="the seeded subset size the corpus step used (default: all molecules)")
    ap.add_argument("--seed", type=int, default=0, help="the subset's seed (the run's --seed)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--gzip-mtime", help="ISO time: compare the corpus with the card's sha256 at this gzip header time")
    ap.add_argument("--raw", type=Path, help="an .npz of the raw descriptors: read if it exists, else written")
    ap.add_argument("--out", type=Path, help=f"default: <weights directory>/{DESC_TARGETS_FILE}")
    ap.add_argument("--check", nargs="+", metavar="FILE[:SMILES_COLUMN]", help="verify instead of writing")
    ap.add_argument("--limit", type=int, help="--check: at most this many molecules per file")
    a = ap.parse_args()
    if a.check:
        check(a.weights, a.check, a.limit)
        return
    if a.corpus is None:
        ap.error("--corpus is needed to write the statistics")

    weights = load_weights(a.weights)
    readout = list(weights.config.readout_descriptors)
    if not readout:
        sys.exit(f"{weights.name} has no descriptor readout")
    smiles = read_smiles(a.corpus, a.n, a.seed)
    t0 = time.perf_counter()
    if a.raw is not None and a.raw.exists():
        z = np.load(a.raw, allow_pickle=False)
        parsed, raw = [str(s) for s in z["smiles"]], z["raw"]
    else:
        parsed, raw = raw_descriptors(smiles, a.workers)
        if a.raw is not None:
            np.savez(a.raw, smiles=np.asarray(parsed), raw=raw)
    mean, std, keep = statistics(raw)
    check_same_targets(raw, mean, std, keep)
    names = [n for n, k in zip(descriptor_names("v2"), keep, strict=True) if k]
    if names != readout:
        sys.exit(f"the descriptors kept on this corpus ({len(names)}) are not {weights.name}'s readout outputs "
                 f"({len(readout)}): only in ours {sorted(set(names) - set(readout))}, "
                 f"only in the readout {sorted(set(readout) - set(names))}")

    card = weights.card
    recorded = card.get("readout", {}).get("corpus_cache", {}).get("corpus_sha256") or card["corpus"]["sha256"]
    subset = f"the seeded subset (seed {a.seed}) of {a.n} molecules" if a.n else "every molecule"
    smiles_digest = hashlib.sha256("\n".join(parsed).encode()).hexdigest()
    command = " ".join(["python scripts/desc_targets_for_release.py", *sys.argv[1:]])
    out = a.out or weights.path / DESC_TARGETS_FILE
    out.write_text(json.dumps({
        "names": names,
        "mean": [float(v) for v in mean[keep]],
        "std": [float(v) for v in std[keep]],
        "transform": TRANSFORM.format(rdkit=rdkit.__version__),
        "provenance": (
            f"written by `{command}` after {weights.name} was released (a sidecar: the release's card, config and "
            f"tensors are unchanged); {corpus_identity(a.corpus, recorded, a.gzip_mtime)}; {subset} as "
            f"hsafeat.pretrain.corpus.read_smiles draws it, {len(parsed)} of {len(smiles)} parsed "
            f"(sha256 of their SMILES joined by newlines: {smiles_digest}); RDKit {rdkit.__version__}"
        ),
    }, indent=1) + "\n")
    print(json.dumps({"out": str(out), "molecules": len(parsed), "descriptors": len(names),
                      "seconds": round(time.perf_counter() - t0, 1)}))


if __name__ == "__main__":
    main()
