"""Property-based tests: for random inputs, the outputs obey the documented contracts.

1. .smi files of random text: one row per data line (independent oracle of the reading rules),
   row_idx 0..n-1, ids aligned, finite embeddings on valid rows, null ones plus an error on
   invalid rows, never an exception.
2. Random molecules: every SMILES spelling of one molecule gives the same embeddings.
3. HSAFeaturizer(on_invalid="nan"): the valid mask is RDKit's validity, NaN exactly on invalid
   rows, and a row's embedding does not depend on the other rows of the call.
4. CSV/TSV ids with commas, quotes and newlines round-trip.

Most examples call hsafeat.pipeline.embed_file directly (one Embedder for the module); a few go
through the CLI. Budget: the whole module runs in well under a minute on a busy 2-core machine."""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rdkit import Chem

from hsafeat import HSAFeaturizer
from hsafeat.engine import Embedder
from hsafeat.io import InputError, open_input
from hsafeat.output import read_hsafeat_metadata
from hsafeat.pipeline import embed_file
from tests.cli import assert_ok, invoke, single_thread_torch  # noqa: F401 - autouse: torch threads = 1
from tests.property import (
    CHIRAL_BLOCKS,
    csv_expected_id,
    csv_ids,
    embedding_matrix,
    expected_valid,
    mixed_smiles,
    molecules,
    smi_expected_rows,
    smi_line,
    smi_text,
    spellings,
)

TOL = 1e-5


def fast(n: int) -> settings:
    return settings(max_examples=n, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def embedder(tiny_weights: Path) -> Embedder:
    return Embedder(str(tiny_weights), batch_size=4)  # small batches: rows of one file share batches


@pytest.fixture(scope="module")
def featurizer(tiny_weights: Path) -> HSAFeaturizer:
    f = HSAFeaturizer(columns=("fused", "level_0", "motif"), weights=str(tiny_weights), batch_size=3,
                      on_invalid="nan")
    return f.fit([])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("property")


def check_smi_output(out: Path, data: bytes, text: str, embedder: Embedder) -> None:
    """The output of a .smi file against the reading-rules and validity oracles."""
    expected = smi_expected_rows(text)
    n = len(expected)
    table = pq.read_table(out)
    assert table.num_rows == n, (table.num_rows, expected)
    assert table.column("row_idx").to_pylist() == list(range(n))
    assert table.column("id").to_pylist() == [r.id for r in expected]
    assert table.column("smiles").to_pylist() == [r.smiles for r in expected]
    valid = np.asarray(table.column("valid").to_pylist(), dtype=bool)
    want = [expected_valid(r.smiles, embedder.weights.max_atoms) for r in expected]
    wrong = [(r.smiles, e) for r, v, w, e in zip(expected, valid, want, table.column("error").to_pylist()) if v != w]
    assert not wrong, f"validity differs from RDKit's (smiles, hsafeat error): {wrong}"
    errors = table.column("error").to_pylist()
    canonical = table.column("canonical_smiles").to_pylist()
    for ok, err, can in zip(valid, errors, canonical):
        if ok:
            assert err is None and can
        else:
            assert isinstance(err, str) and err.strip() and can is None
    for name, dim in embedder.dims.items():
        if name not in table.column_names and f"{name}_000" not in table.column_names:
            continue  # not written (--levels)
        values, null = embedding_matrix(table, name, dim)
        assert (null == ~valid).all(), name
        assert np.isfinite(values[valid]).all(), name
    meta = read_hsafeat_metadata(out)
    assert meta["rows"] == {"total": n, "valid": int(valid.sum()), "invalid": n - int(valid.sum())}
    assert meta["input_sha256"] == hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------- 1. .smi files of random text


@fast(60)
@given(text=smi_text(), chunk_size=st.integers(1, 5), layout=st.sampled_from(["list", "wide"]))
def test_smi_rows_follow_the_reading_rules(text: str, chunk_size: int, layout: str, embedder: Embedder,
                                           workdir: Path) -> None:
    path, out = workdir / "random.smi", workdir / "random.parquet"
    data = text.encode("utf-8")
    path.write_bytes(data)
    embed_file(open_input(str(path)), out, embedder, layout=layout, chunk_size=chunk_size, overwrite=True)
    check_smi_output(out, data, text, embedder)


@fast(12)
@given(lines=st.lists(smi_line(), max_size=6), pad=st.sampled_from([0, 9000]), data=st.data())
def test_nul_byte_is_refused_only_in_the_first_block(lines: list[str], pad: int, data: st.DataObject,
                                                     embedder: Embedder, workdir: Path) -> None:
    """NUL in the first 8 KiB: the file is refused as binary (InputError). After that it is text,
    and the NUL is just a character of a (then invalid) row."""
    text = "\n".join(["# " + "x" * 62] * (pad // 64) + lines)  # comment padding: cheap, and not rows
    pos = data.draw(st.integers(0, len(text)))
    text = text[:pos] + "\x00" + text[pos:]
    raw = text.encode("utf-8")
    path, out = workdir / "nul.smi", workdir / "nul.parquet"
    path.write_bytes(raw)
    if raw.index(b"\x00") < 8192:
        with pytest.raises(InputError, match="binary"):
            open_input(str(path))
        return
    embed_file(open_input(str(path)), out, embedder, levels=["motif"], overwrite=True)
    check_smi_output(out, raw, text, embedder)


@fast(5)
@given(text=smi_text())
def test_cli_smi_rows_follow_the_reading_rules(text: str, tiny_weights: Path, embedder: Embedder,
                                               workdir: Path) -> None:
    path, out = workdir / "cli.smi", workdir / "cli.parquet"
    data = text.encode("utf-8")
    path.write_bytes(data)
    assert_ok(invoke(["embed", path, "-o", out, "--levels", "fused,motif", "--overwrite"], tiny_weights))
    check_smi_output(out, data, text, embedder)


# ------------------------------------------------- 2. spellings of one molecule embed identically


def embed_spellings(mol: Chem.Mol, seed: int, embedder: Embedder, workdir: Path) -> None:
    variants = spellings(mol, seed, n_random=4)
    path, out = workdir / "spellings.smi", workdir / "spellings.parquet"
    path.write_text("".join(f"{s} spelling_{i}\n" for i, s in enumerate(variants)), encoding="utf-8")
    embed_file(open_input(str(path)), out, embedder, chunk_size=3, overwrite=True)
    table = pq.read_table(out)
    assert table.column("id").to_pylist() == [f"spelling_{i}" for i in range(len(variants))]
    assert all(table.column("valid").to_pylist()), list(zip(variants, table.column("error").to_pylist()))
    assert set(table.column("canonical_smiles").to_pylist()) == {Chem.MolToSmiles(mol)}
    for name, dim in embedder.dims.items():
        values, null = embedding_matrix(table, name, dim)
        assert not null.any() and np.isfinite(values).all()
        for i in range(1, len(variants)):
            np.testing.assert_allclose(values[i], values[0], rtol=TOL, atol=TOL,
                                       err_msg=f"{name}: {variants[i]!r} vs {variants[0]!r}")


@fast(40)
@given(mol=molecules(), seed=st.integers(0, 2**31 - 1))
def test_spellings_of_a_molecule_embed_identically(mol: Chem.Mol, seed: int, embedder: Embedder,
                                                   workdir: Path) -> None:
    embed_spellings(mol, seed, embedder, workdir)


@fast(10)
@given(mol=molecules(must_include=CHIRAL_BLOCKS), seed=st.integers(0, 2**31 - 1))
@example(mol=Chem.MolFromSmiles("C[C@H](N)C(=O)O"), seed=0)  # failed before chirality was canonicalised
def test_spellings_of_a_chiral_molecule_embed_identically(mol: Chem.Mol, seed: int, embedder: Embedder,
                                                          workdir: Path) -> None:
    embed_spellings(mol, seed, embedder, workdir)


# ----------------------------------------- 3. HSAFeaturizer: mask, NaN rows, batch independence


@fast(40)
@given(smiles=st.lists(mixed_smiles(), min_size=1, max_size=10), data=st.data())
def test_featurizer_mask_nan_rows_and_batch_independence(smiles: list[str], data: st.DataObject,
                                                         featurizer: HSAFeaturizer, embedder: Embedder) -> None:
    n, width = len(smiles), featurizer.n_features_out_
    X, mask = featurizer.transform_with_mask(smiles)
    assert X.shape == (n, width) and X.dtype == np.float32 and mask.shape == (n,) and mask.dtype == bool
    want = [expected_valid(s, embedder.weights.max_atoms) for s in smiles]
    assert mask.tolist() == want, [(s, m) for s, m, w in zip(smiles, mask, want) if m != w]
    assert np.isfinite(X[mask]).all()
    assert np.isnan(X[~mask]).all()
    np.testing.assert_array_equal(featurizer.transform(smiles), X)  # on_invalid="nan": same matrix
    # any subset, in any order, embeds to the same rows
    order = data.draw(st.permutations(range(n)))
    subset = order[: data.draw(st.integers(1, n))]
    Xs, ms = featurizer.transform_with_mask([smiles[i] for i in subset])
    assert ms.tolist() == mask[subset].tolist()
    np.testing.assert_allclose(Xs, X[subset], rtol=TOL, atol=TOL)


# ------------------------------------------------------------------------- 4. CSV ids round-trip


def write_table_file(path: Path, header: list[str], records: list[list[str]], delimiter: str) -> bytes:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(records)
    return path.read_bytes()


# no NUL anywhere: a NUL in the first 8 KiB makes the whole file "binary" (tested above)
csv_rows = st.lists(st.tuples(mixed_smiles().map(lambda s: s.replace("\x00", "")), csv_ids(), csv_ids()), max_size=8)


def check_csv_output(out: Path, rows: list[tuple[str, str, str]], embedder: Embedder) -> None:
    table = pq.read_table(out)
    assert table.num_rows == len(rows)
    assert table.column("row_idx").to_pylist() == list(range(len(rows)))
    assert table.column("id").to_pylist() == [csv_expected_id(ident, i) for i, (_, ident, _) in enumerate(rows)]
    assert table.column("smiles").to_pylist() == [s.strip() for s, _, _ in rows]
    valid = table.column("valid").to_pylist()
    assert valid == [expected_valid(s, embedder.weights.max_atoms) for s, _, _ in rows]
    values, null = embedding_matrix(table, "motif", embedder.dims["motif"])
    assert (null == ~np.asarray(valid, dtype=bool)).all() and np.isfinite(values[~null]).all()


@fast(30)
@given(rows=csv_rows, id_first=st.booleans(), delimiter=st.sampled_from([",", "\t"]))
def test_csv_ids_round_trip(rows: list[tuple[str, str, str]], id_first: bool, delimiter: str,
                            embedder: Embedder, workdir: Path) -> None:
    """Ids (and an unrelated extra column) full of delimiters, quotes and line breaks, written with
    the csv module, come back exactly (trimmed; an empty id becomes the row index)."""
    header = ["id", "smiles", "note"] if id_first else ["note", "smiles", "id"]
    records = [[i, s, note] if id_first else [note, s, i] for s, i, note in rows]
    path = workdir / ("ids.csv" if delimiter == "," else "ids.tsv")
    out = workdir / "ids.parquet"
    write_table_file(path, header, records, delimiter)
    embed_file(open_input(str(path)), out, embedder, levels=["motif"], chunk_size=3, overwrite=True)
    check_csv_output(out, rows, embedder)


@fast(3)
@given(rows=csv_rows)
def test_cli_csv_ids_round_trip(rows: list[tuple[str, str, str]], tiny_weights: Path, embedder: Embedder,
                                workdir: Path) -> None:
    path, out = workdir / "cli_ids.csv", workdir / "cli_ids.parquet"
    write_table_file(path, ["smiles", "name", "note"], [[s, i, note] for s, i, note in rows], ",")
    assert_ok(invoke(["embed", path, "-o", out, "--levels", "motif", "--overwrite"], tiny_weights))
    check_csv_output(out, rows, embedder)
