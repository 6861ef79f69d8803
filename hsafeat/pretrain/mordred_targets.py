"""Mordred 2D descriptors as pretraining targets (target set "v3"), computed once per molecule in
resumable shards.

CheMeleon pretrains a D-MPNN to predict ~1,600 Mordred descriptors and ships the layer that feeds
those heads as its fingerprint; Mordred adds autocorrelations, E-state counts, ring and path
statistics that RDKit's 217 descriptors do not hold. It is slow: all 1,613 2D descriptors cost
~0.4-0.8 s of CPU per broad-corpus molecule, so the modules that cost the most for the least are
left out (SKIPPED_MODULES; each was timed alone on 25 broad-corpus molecules: BCUT 332 ms, Chi 94,
InformationContent 90, PathCount 79, BaryszMatrix 75, DetourMatrix 72, ExtendedTopochemicalAtom 69,
MolecularId 36 ms per molecule; RDKit's own list already has BCUT2D and Chi0-4). What remains is
1,295 descriptors at ~140 ms of CPU per molecule (30 broad-corpus molecules, process time): about
2.3 hours for 120,000 molecules on 2 cores.

Shards hold `SHARD_SIZE` consecutive molecules of the subset, written atomically (temporary file,
then rename) with the SMILES they describe: a killed run loses at most one shard per worker, and a
shard made for other molecules is refused rather than reused. Needs the `mordred` extra
(`pip install mordredcommunity`)."""
from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from hsafeat.chem.parse import parse_smiles

SKIPPED_MODULES = ("BCUT", "Chi", "InformationContent", "PathCount", "BaryszMatrix", "DetourMatrix",
                   "ExtendedTopochemicalAtom", "MolecularId")
SHARD_SIZE = 1000
NAME_PREFIX = "mordred:"   # names in the descriptor list beside RDKit's: "mordred:ATS0dv"

_CALCULATOR = None  # per process, built on first use (building it costs ~0.5 s)


def require_mordred() -> None:
    try:
        import mordred  # noqa: F401
    except ImportError as exc:
        raise RuntimeError("target set v3 needs Mordred: pip install 'hsafeat[mordred]' (mordredcommunity)") from exc


def _calculator():  # noqa: ANN202 -- mordred.Calculator, imported lazily (optional dependency)
    global _CALCULATOR
    if _CALCULATOR is None:
        from mordred import Calculator, descriptors
        modules = [m for m in descriptors.all if m.__name__.rsplit(".", 1)[-1] not in SKIPPED_MODULES]
        _CALCULATOR = Calculator(modules, ignore_3D=True)
    return _CALCULATOR


def mordred_names() -> list[str]:
    return [NAME_PREFIX + str(d) for d in _calculator().descriptors]


def mordred_row(smiles: str) -> np.ndarray:
    """The descriptors of one molecule, float32, NaN where Mordred fails (or the SMILES does)."""
    calc = _calculator()
    mol = parse_smiles(smiles).mol
    if mol is None:
        return np.full(len(calc.descriptors), np.nan, dtype=np.float32)
    with warnings.catch_warnings():  # overflow in a few descriptors of huge molecules: NaN below
        warnings.simplefilter("ignore")
        values = calc(mol)
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        try:
            out[i] = float(v)   # a failed descriptor is an error object: float() raises on it
        except (TypeError, ValueError):
            out[i] = np.nan
    out[~np.isfinite(out)] = np.nan
    with np.errstate(over="ignore"):
        return out.astype(np.float32)


def _shard_path(shard_dir: Path, k: int) -> Path:
    return shard_dir / f"shard_{k:05d}.npz"


def _read_shard(path: Path, smiles: list[str], names: list[str]) -> np.ndarray | None:
    """The shard's values if it was made for exactly these molecules and descriptors, else None."""
    try:
        z = np.load(path, allow_pickle=False)
        if [str(s) for s in z["smiles"]] == smiles and [str(s) for s in z["names"]] == names:
            return z["values"]
    except (OSError, ValueError, KeyError):
        pass
    return None


def compute_shards(smiles: list[str], shard_dir: Path, workers: int = 2,
                   log: Callable[[str], None] = lambda _: None) -> tuple[list[str], np.ndarray]:
    """(names, n x n_descriptors float32) for `smiles`, computing only the shards not on disk."""
    require_mordred()
    shard_dir.mkdir(parents=True, exist_ok=True)
    names = mordred_names()
    chunks = [smiles[lo:lo + SHARD_SIZE] for lo in range(0, len(smiles), SHARD_SIZE)]
    parts: list[np.ndarray | None] = [_read_shard(_shard_path(shard_dir, k), c, names) for k, c in enumerate(chunks)]
    todo = [k for k, p in enumerate(parts) if p is None]
    if todo:
        log(f"Mordred: {len(todo)} of {len(chunks)} shards to compute in {shard_dir}")
        with Pool(workers) as pool:
            for k in todo:
                values = np.stack(pool.map(mordred_row, chunks[k], chunksize=16))
                path = _shard_path(shard_dir, k)
                tmp = path.with_suffix(".tmp.npz")
                np.savez(tmp, smiles=np.asarray(chunks[k]), names=np.asarray(names), values=values)
                os.replace(tmp, path)
                parts[k] = values
                log(f"Mordred shard {k + 1}/{len(chunks)} written")
            pool.close()
            pool.join()
    values = np.concatenate([p for p in parts if p is not None]) if parts else np.zeros((0, len(names)), np.float32)
    return names, values
