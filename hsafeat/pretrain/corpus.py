"""Corpus preparation: SMILES -> MolGraphs + self-supervised targets, cached to one .npz.

Two target sets (the cache records which):
- "v1": ECFP4 bits (radius 2, 1024) and 32 RDKit descriptors;
- "v2": Morgan bits at radius 1, 2 and 3 (1024 each), radius-2 counts (1024, log1p at load) and
  every descriptor in RDKit's `Descriptors.descList` (MiniMol / CheMeleon: many descriptors at once);
- "v3": v2 plus ~1,300 Mordred 2D descriptors (CheMeleon's targets; mordred_targets.py), computed
  in resumable shards beside the cache.
Descriptors are clipped to their 0.5-99.5 % corpus quantiles, standardised and clipped to +-5;
descriptors constant on the corpus are dropped. Each molecule also gets a scaffold id (hash of its
Bemis-Murcko framework) for the H-MoE routing contrast. The cache keeps the SMILES of the molecules
it holds, in its order (the order the batch sampler indexes), and the recipe that made it."""
from __future__ import annotations

import gzip
import hashlib
import json
import re
import warnings
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from functools import partial
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from rdkit import Chem
from rdkit.Chem import Descriptors, rdFingerprintGenerator

from hsafeat.chem.fragments import vocabulary_index
from hsafeat.chem.graph import MolGraph, mol_to_graph_and_fragments
from hsafeat.chem.parse import parse_smiles
from hsafeat.chem.smiles_tokens import smiles_token_ids

FP_BITS = 1024
DESCRIPTORS = [
    "MolWt", "MolLogP", "MolMR", "TPSA", "LabuteASA", "NumHDonors", "NumHAcceptors", "NumRotatableBonds",
    "RingCount", "NumAromaticRings", "NumAliphaticRings", "NumSaturatedRings", "FractionCSP3", "HeavyAtomCount",
    "NumHeteroatoms", "NHOHCount", "NOCount", "BalabanJ", "BertzCT", "HallKierAlpha", "Kappa1", "Kappa2",
    "Kappa3", "Chi0v", "Chi1v", "Chi2v", "Chi3v", "Chi4v", "NumAromaticCarbocycles", "NumAromaticHeterocycles",
    "NumAliphaticHeterocycles", "fr_halogen",
]
_FUNCS = dict(Descriptors.descList)
TARGET_SETS = ("v1", "v2", "v3")
MORGAN_RADII = {"v1": (2,), "v2": (1, 2, 3), "v3": (1, 2, 3)}
COUNT_RADIUS = 2                     # v2 and v3
WITH_COUNTS = ("v2", "v3")


def descriptor_names(targets: str) -> list[str]:
    """The RDKit descriptors make_example computes (v3's Mordred columns are joined in prepare)."""
    return DESCRIPTORS if targets == "v1" else [name for name, _ in Descriptors.descList]


def _descriptor(name: str, mol: Chem.Mol) -> float:
    try:
        return float(_FUNCS[name](mol))
    except Exception:  # noqa: BLE001 -- RDKit descriptors raise assorted errors on odd molecules; NaN becomes the corpus mean
        return float("nan")


@dataclass
class Example:
    smiles: str             # as read from the corpus
    graph: MolGraph
    fragments: list[str]
    fp: np.ndarray          # FP_BITS per Morgan radius, uint8
    counts: np.ndarray      # v2: FP_BITS radius-2 counts (uint8, saturated); v1: empty
    desc: np.ndarray        # descriptor_names(targets), float64 (raw)
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


def read_corpus_lines(path: Path) -> int:
    """How many molecules read_smiles finds in the corpus (all of it: no subset)."""
    try:
        return len(read_smiles(path, None, 0))
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read corpus {path}: {exc}") from None


def too_few_molecules(path: Path, n_read: int, n_parsed: int | None, need: int) -> str:
    """The one line that refuses a corpus (or its subset) with fewer than `need` usable molecules."""
    parsed = "" if n_parsed is None else f", {n_parsed} parsed"
    hint = ""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rt") as f:
            header = [c.strip() for c in re.split(r"[,\s]", f.readline().strip())]
        named = [i for i, c in enumerate(header) if "smiles" in c.lower()]
        if named and named[0] > 0:
            hint = f"; its header names {header[named[0]]!r} as column {named[0] + 1}: put the SMILES first"
    except (OSError, EOFError, UnicodeDecodeError):
        pass
    return (f"corpus {path}: {n_read} molecule line{'s' if n_read != 1 else ''} read{parsed} (SMILES are read from the first "
            f"field of each line, comma or whitespace separated{hint}); pretraining needs at least {need} molecules "
            "that parse")


def make_example(smiles: str, targets: str = "v1") -> Example | None:
    mol = parse_smiles(smiles).mol
    if mol is None:
        return None
    graph, fragments = mol_to_graph_and_fragments(mol)  # BRICS once: graph and vocabulary both need it
    gens = {r: rdFingerprintGenerator.GetMorganGenerator(radius=r, fpSize=FP_BITS) for r in MORGAN_RADII[targets]}
    fp = np.concatenate([gens[r].GetFingerprintAsNumPy(mol) for r in MORGAN_RADII[targets]])
    counts = (np.minimum(gens[COUNT_RADIUS].GetCountFingerprintAsNumPy(mol), 255) if targets in WITH_COUNTS
              else np.zeros(0, np.uint8))
    desc = np.asarray([_descriptor(name, mol) for name in descriptor_names(targets)], dtype=np.float64)
    scaffold = Chem.MolFragmentToSmiles(mol, [int(i) for i in np.flatnonzero(graph.scaffold)]) if graph.scaffold.any() else ""
    return Example(smiles, graph, fragments, fp.astype(np.uint8), counts.astype(np.uint8), desc,
                   zlib.crc32(scaffold.encode()))


def build_vocab(examples: list[Example], size: int, min_count: int = 2) -> list[str]:
    """UNK first, then the most frequent fragments (ties broken by SMILES for determinism)."""
    counts = Counter(f for ex in examples for f in ex.fragments)
    common = sorted((c for c in counts.items() if c[1] >= min_count), key=lambda kv: (-kv[1], kv[0]))
    return ["[UNK]"] + [s for s, _ in common[: size - 1]]


def featurize_corpus(smiles: list[str], workers: int = 2, targets: str = "v1") -> list[Example]:
    with Pool(workers) as pool:
        examples = [ex for ex in pool.imap(partial(make_example, targets=targets), smiles, chunksize=256) if ex is not None]
        # Let the workers finish on their own before leaving: Pool.__exit__ calls terminate(), which
        # can hang for good if it races the pool replacing a worker (seen once in CI, under load).
        pool.close()
        pool.join()
    return examples


# --- the cache: one .npz of concatenated arrays plus per-molecule counts (no pickle) ---

_NODE = ("x", "frag_index", "scaffold")   # per atom
_EDGE = ("edge_attr",)                    # per directed edge (edge_index stacked separately)


def save_cache(path: Path, examples: list[Example], vocab: list[str], corpus_sha256: str, targets: str = "v1",
               recipe: dict | None = None, desc_names: list[str] | None = None) -> None:
    """recipe: what made the cache (corpus, subset, targets, vocabulary), compared before it is reused;
    desc_names: the names of the examples' desc columns (default: descriptor_names(targets))."""
    index = vocabulary_index(vocab)
    gs = [ex.graph for ex in examples]
    arrays: dict[str, np.ndarray] = {
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
        "counts": np.stack([ex.counts for ex in examples]),
        "desc": np.stack([ex.desc for ex in examples]),
        "desc_names": np.asarray(desc_names if desc_names is not None else descriptor_names(targets)),
        "targets": np.asarray(targets),
        "scaffold_id": np.asarray([ex.scaffold_id for ex in examples], dtype=np.int64),
        "vocab": np.asarray(vocab),
        "corpus_sha256": np.asarray(corpus_sha256),
        "smiles": np.asarray([ex.smiles for ex in examples]),
        "recipe": np.asarray(json.dumps(recipe or {}, sort_keys=True)),
    }
    for name in _NODE + _EDGE:
        arrays[name] = np.concatenate([getattr(g, name) for g in gs]).astype(np.int8)
    np.savez(path, **arrays)  # type: ignore[arg-type]


@dataclass
class Corpus:
    graphs: list[MolGraph]
    fp: np.ndarray          # n x (FP_BITS * radii) float32 bits
    counts: np.ndarray      # n x FP_BITS float32 log1p counts (v2), n x 0 (v1)
    desc: np.ndarray        # n x n_desc float32, quantile-clipped, standardised, clipped to +-5
    desc_names: list[str]   # the descriptors kept (not constant on the corpus)
    scaffold_id: np.ndarray
    vocab: list[str]
    corpus_sha256: str
    targets: str
    smiles: list[str]                 # the molecules held, in the cache's order
    desc_stats: DescriptorStats       # for the kept descriptors (desc_names), in that order
    recipe: dict

    def smiles_sha256(self) -> str:
        """Names exactly the molecules used and their order: sha256 of the SMILES joined by newlines."""
        return hashlib.sha256("\n".join(self.smiles).encode()).hexdigest()


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
    if "smiles" not in z:
        raise ValueError(f"{path} predates caches that keep their SMILES: use another --workdir")
    targets = str(z["targets"]) if "targets" in z else "v1"
    names = [str(s) for s in z["desc_names"]] if "desc_names" in z else list(DESCRIPTORS)
    stats = descriptor_statistics(z["desc"])
    desc, keep = standardise_descriptors(z["desc"], stats)
    n_bits = FP_BITS * len(MORGAN_RADII[targets])
    counts = z["counts"] if "counts" in z else np.zeros((len(n_atoms), 0), np.uint8)
    return Corpus(
        graphs=graphs,
        fp=np.unpackbits(z["fp"], axis=1)[:, :n_bits].astype(np.float32),
        counts=np.log1p(counts.astype(np.float32)),
        desc=desc, desc_names=[n for n, k in zip(names, keep) if k],
        scaffold_id=z["scaffold_id"],
        vocab=[str(s) for s in z["vocab"]],
        corpus_sha256=str(z["corpus_sha256"]),
        targets=targets,
        smiles=[str(s) for s in z["smiles"]],
        desc_stats=stats.kept(),
        recipe=json.loads(str(z["recipe"])),
    )


STANDARDISATION = (
    "raw descriptor values x (RDKit's; Mordred's for names starting with 'mordred:'); "
    "non-finite values are left out of the statistics and their target is 0; "
    "x is clipped to [clip_low, clip_high], the descriptor's 0.5 and 99.5 % quantiles on the corpus; "
    "target = clip((x - mean) / std, -5, 5) with the mean and population std of the clipped values; "
    "descriptors constant after clipping are dropped (hsafeat.pretrain.corpus.standardise_descriptors). "
    "Real units: value * std + mean"
)


@dataclass(frozen=True)
class DescriptorStats:
    """Per descriptor: the quantile clip and the mean and std that standardise (float64)."""
    low: np.ndarray
    high: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    keep: np.ndarray        # bool: not constant on the corpus

    def kept(self) -> DescriptorStats:
        k = self.keep
        return DescriptorStats(self.low[k], self.high[k], self.mean[k], self.std[k], k[k])


def descriptor_statistics(raw: np.ndarray) -> DescriptorStats:
    """Quantiles at 0.5 and 99.5 % (heavy tails such as Ipc would otherwise dominate the loss),
    then the mean and population std of the clipped values, ignoring non-finite values."""
    x = np.where(np.isfinite(raw), raw, np.nan)
    with warnings.catch_warnings():  # a descriptor that failed on every molecule: NaN statistics, dropped
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanquantile(x, 0.005, axis=0), np.nanquantile(x, 0.995, axis=0)
        x = np.clip(x, lo, hi)
        mean, std = np.nanmean(x, 0), np.nanstd(x, 0)
    return DescriptorStats(lo, hi, mean, std, std > 1e-8)


def standardise_descriptors(raw: np.ndarray, stats: DescriptorStats | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Clip each descriptor to its quantiles, standardise, clip to +-5; drop descriptors constant
    on the corpus. Non-finite values (descriptors that failed) become the mean (0 after standardising)."""
    s = stats if stats is not None else descriptor_statistics(raw)
    x = np.clip(np.where(np.isfinite(raw), raw, np.nan), s.low, s.high)
    z = (x[:, s.keep] - s.mean[s.keep]) / s.std[s.keep]
    return np.clip(np.nan_to_num(z, nan=0.0), -5, 5).astype(np.float32), s.keep


def canonical_token_ids(smiles: str, max_len: int) -> np.ndarray:
    """The SMILES branch's ids for one corpus molecule: those featurize_one gives its canonical SMILES."""
    mol = parse_smiles(smiles).mol
    if mol is None:  # the cache holds only molecules that parsed
        raise ValueError(f"corpus molecule no longer parses: {smiles}")
    return smiles_token_ids(Chem.MolToSmiles(mol), max_len)


def attach_smiles_tokens(corpus: Corpus, max_len: int, workers: int = 2) -> None:
    """Give every graph its SMILES token ids (weights with the SMILES branch), made from the
    SMILES the cache keeps: the cache format stays as it is, and caches made before the branch
    existed serve it too."""
    with Pool(workers) as pool:
        ids = list(pool.imap(partial(canonical_token_ids, max_len=max_len), corpus.smiles, chunksize=512))
        pool.close()  # as featurize_corpus: let the workers finish before Pool.__exit__ terminates them
        pool.join()
    for graph, tokens in zip(corpus.graphs, ids, strict=True):
        graph.smiles_tokens = tokens


def prepare(corpus: Path, out: Path, n: int | None, seed: int, vocab_size: int, workers: int = 2,
            targets: str = "v1", vocab: list[str] | None = None, recipe: dict | None = None,
            log: Callable[[str], None] = lambda _: None, min_molecules: int = 1) -> None:
    """vocab: reuse a fixed fragment vocabulary (continuing from released weights); else build one.
    ValueError, and no cache, when fewer than min_molecules parse."""
    smiles = read_smiles(corpus, n, seed)
    names = None
    if targets == "v3":  # the slow part first, in shards that survive a kill (mordred_targets.py)
        from hsafeat.pretrain.mordred_targets import compute_shards
        mordred_names, mordred = compute_shards(smiles, out.parent / "mordred", workers, log)
    examples = featurize_corpus(smiles, workers, targets)
    if len(examples) < max(1, min_molecules):
        raise ValueError(too_few_molecules(corpus, len(smiles), len(examples), max(1, min_molecules)))
    if targets == "v3":
        examples = join_columns(examples, smiles, mordred)
        names = descriptor_names(targets) + mordred_names
    vocab = vocab if vocab is not None else build_vocab(examples, vocab_size)
    digest = hashlib.sha256(Path(corpus).read_bytes()).hexdigest()
    save_cache(out, examples, vocab, digest, targets, recipe, names)


def join_columns(examples: list[Example], smiles: list[str], extra: np.ndarray) -> list[Example]:
    """Append extra[i] (row i describes smiles[i]) to the desc of the example made from smiles[i].
    Examples keep the order of `smiles` and skip the molecules that did not parse."""
    out, i = [], 0
    for ex in examples:
        while smiles[i] != ex.smiles:
            i += 1
        out.append(replace(ex, desc=np.concatenate([ex.desc, extra[i].astype(np.float64)])))
        i += 1
    return out


# smiles_tokens is not cached: attach_smiles_tokens makes it from the cached SMILES when needed
assert {f.name for f in fields(MolGraph)} == {"x", "edge_index", "edge_attr", "frag_index", "frag_ids", "order",
                                             "prox_index", "prox_weight", "scaffold", "smiles_tokens"}, \
    "update the cache format"
