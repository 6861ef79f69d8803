"""Corpus preparation: SMILES -> MolGraphs + self-supervised targets, cached to one .npz.

Targets: ECFP4 bits (radius 2, 1024) and standardised, clipped RDKit descriptors; each molecule
also gets a scaffold id (hash of its Bemis-Murcko framework) for the H-MoE routing contrast."""
from __future__ import annotations

import gzip
import hashlib
import re
import zlib
from collections import Counter
from dataclasses import dataclass, fields
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from rdkit import Chem
from rdkit.Chem import Descriptors, rdFingerprintGenerator

from hsafeat.chem.graph import MolGraph, mol_to_graph_and_fragments
from hsafeat.chem.parse import parse_smiles

FP_BITS = 1024
DESCRIPTORS = [
    "MolWt", "MolLogP", "MolMR", "TPSA", "LabuteASA", "NumHDonors", "NumHAcceptors", "NumRotatableBonds",
    "RingCount", "NumAromaticRings", "NumAliphaticRings", "NumSaturatedRings", "FractionCSP3", "HeavyAtomCount",
    "NumHeteroatoms", "NHOHCount", "NOCount", "BalabanJ", "BertzCT", "HallKierAlpha", "Kappa1", "Kappa2",
    "Kappa3", "Chi0v", "Chi1v", "Chi2v", "Chi3v", "Chi4v", "NumAromaticCarbocycles", "NumAromaticHeterocycles",
    "NumAliphaticHeterocycles", "fr_halogen",
]
_FUNCS = dict(Descriptors.descList)


@dataclass
class Example:
    graph: MolGraph
    fragments: list[str]
    fp: np.ndarray          # FP_BITS uint8
    desc: np.ndarray        # len(DESCRIPTORS) float64 (raw)
    scaffold_id: int


def read_smiles(path: Path, n: int | None, seed: int) -> list[str]:
    """The first field (comma or whitespace separated) of each line of a (gzipped) CSV or .smi,
    skipping a header named like "smiles"; a seeded random subset of n."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as f:
        fields_ = [re.split(r"[,\s]", line.strip(), maxsplit=1)[0] for line in f if line.strip()]
    smiles = fields_[1:] if fields_ and "smiles" in fields_[0].lower() else fields_
    if n is not None and n < len(smiles):
        idx = np.random.default_rng(seed).permutation(len(smiles))[:n]
        smiles = [smiles[i] for i in np.sort(idx)]
    return smiles


def make_example(smiles: str) -> Example | None:
    mol = parse_smiles(smiles).mol
    if mol is None:
        return None
    graph, fragments = mol_to_graph_and_fragments(mol)  # BRICS once: graph and vocabulary both need it
    fp = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=FP_BITS).GetFingerprintAsNumPy(mol)
    desc = np.asarray([_FUNCS[name](mol) for name in DESCRIPTORS], dtype=np.float64)
    scaffold = Chem.MolFragmentToSmiles(mol, [int(i) for i in np.flatnonzero(graph.scaffold)]) if graph.scaffold.any() else ""
    return Example(graph, fragments, fp.astype(np.uint8), desc, zlib.crc32(scaffold.encode()))


def build_vocab(examples: list[Example], size: int, min_count: int = 2) -> list[str]:
    """UNK first, then the most frequent fragments (ties broken by SMILES for determinism)."""
    counts = Counter(f for ex in examples for f in ex.fragments)
    common = sorted((c for c in counts.items() if c[1] >= min_count), key=lambda kv: (-kv[1], kv[0]))
    return ["[UNK]"] + [s for s, _ in common[: size - 1]]


def featurize_corpus(smiles: list[str], workers: int = 2) -> list[Example]:
    with Pool(workers) as pool:
        return [ex for ex in pool.imap(make_example, smiles, chunksize=256) if ex is not None]


# --- the cache: one .npz of concatenated arrays plus per-molecule counts (no pickle) ---

_NODE = ("x", "frag_index", "scaffold")   # per atom
_EDGE = ("edge_attr",)                    # per directed edge (edge_index stacked separately)


def save_cache(path: Path, examples: list[Example], vocab: list[str], corpus_sha256: str) -> None:
    index = {s: i for i, s in enumerate(vocab)}
    gs = [ex.graph for ex in examples]
    arrays = {
        "n_atoms": np.asarray([g.n_atoms for g in gs]),
        "n_edges": np.asarray([g.edge_index.shape[1] for g in gs]),
        "n_frags": np.asarray([len(ex.fragments) for ex in examples]),
        "n_prox": np.asarray([g.prox_weight.shape[0] for g in gs]),
        "edge_index": np.concatenate([g.edge_index for g in gs], axis=1).astype(np.int32),
        "prox_index": np.concatenate([g.prox_index for g in gs], axis=1).astype(np.int32),
        "prox_weight": np.concatenate([g.prox_weight for g in gs]),
        "order": np.concatenate([g.order for g in gs]).astype(np.int32),
        "frag_ids": np.asarray([index.get(f, 0) for ex in examples for f in ex.fragments], dtype=np.int32),
        "fp": np.packbits(np.stack([ex.fp for ex in examples]), axis=1),
        "desc": np.stack([ex.desc for ex in examples]),
        "scaffold_id": np.asarray([ex.scaffold_id for ex in examples], dtype=np.int64),
        "vocab": np.asarray(vocab),
        "corpus_sha256": np.asarray(corpus_sha256),
    }
    for name in _NODE + _EDGE:
        arrays[name] = np.concatenate([getattr(g, name) for g in gs]).astype(np.int8)
    np.savez(path, **arrays)


@dataclass
class Corpus:
    graphs: list[MolGraph]
    fp: np.ndarray          # n x FP_BITS float32
    desc: np.ndarray        # n x n_desc float32, standardised and clipped to +-5
    desc_mean: np.ndarray
    desc_std: np.ndarray
    scaffold_id: np.ndarray
    vocab: list[str]
    corpus_sha256: str


def _split(a: np.ndarray, counts: np.ndarray, axis: int = 0) -> list[np.ndarray]:
    return np.split(a, np.cumsum(counts)[:-1], axis=axis)


def load_cache(path: Path) -> Corpus:
    z = np.load(path, allow_pickle=False)
    n_atoms, n_edges, n_frags, n_prox = z["n_atoms"], z["n_edges"], z["n_frags"], z["n_prox"]
    per = {name: _split(z[name].astype(np.int64), n_atoms) for name in ("x", "frag_index", "order")}
    scaffold = _split(z["scaffold"].astype(bool), n_atoms)
    edge_index = _split(z["edge_index"].astype(np.int64), n_edges, axis=1)
    edge_attr = _split(z["edge_attr"].astype(np.int64), n_edges)
    prox_index = _split(z["prox_index"].astype(np.int64), n_prox, axis=1)
    prox_weight = _split(z["prox_weight"], n_prox)
    frag_ids = _split(z["frag_ids"].astype(np.int64), n_frags)
    graphs = [
        MolGraph(x=per["x"][i], edge_index=edge_index[i], edge_attr=edge_attr[i], frag_index=per["frag_index"][i],
                 frag_ids=frag_ids[i], order=per["order"][i], prox_index=prox_index[i], prox_weight=prox_weight[i],
                 scaffold=scaffold[i])
        for i in range(len(n_atoms))
    ]
    desc = np.nan_to_num(z["desc"], nan=0.0, posinf=0.0, neginf=0.0)
    mean, std = desc.mean(0), desc.std(0) + 1e-6
    return Corpus(
        graphs=graphs,
        fp=np.unpackbits(z["fp"], axis=1)[:, :FP_BITS].astype(np.float32),
        desc=np.clip((desc - mean) / std, -5, 5).astype(np.float32),
        desc_mean=mean, desc_std=std,
        scaffold_id=z["scaffold_id"],
        vocab=[str(s) for s in z["vocab"]],
        corpus_sha256=str(z["corpus_sha256"]),
    )


def prepare(corpus: Path, out: Path, n: int | None, seed: int, vocab_size: int, workers: int = 2) -> None:
    smiles = read_smiles(corpus, n, seed)
    examples = featurize_corpus(smiles, workers)
    vocab = build_vocab(examples, vocab_size)
    digest = hashlib.sha256(Path(corpus).read_bytes()).hexdigest()
    save_cache(out, examples, vocab, digest)


assert {f.name for f in fields(MolGraph)} == {"x", "edge_index", "edge_attr", "frag_index", "frag_ids", "order",
                                             "prox_index", "prox_weight", "scaffold"}, "update the cache format"
