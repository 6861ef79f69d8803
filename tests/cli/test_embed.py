"""`hsafeat embed`: row alignment, types, metadata, column selection, input kinds, output naming,
atomic output and determinism."""
from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from tests.cli import (  # single_thread_torch: an autouse fixture
    EXAMPLES,
    assert_ok,
    assert_one_line_error,
    data_lines,
    embedding_matrix,
    invoke,
    metadata,
    read,
    single_thread_torch,  # noqa: F401
    tmp_leftovers,
)

BASE_COLUMNS = ["row_idx", "id", "smiles", "canonical_smiles", "valid", "error"]
# The deliberately bad lines of examples/molecules.smi: id -> a fragment of the expected error.
KNOWN_BAD = {"not_a_ring": "unclosed ring", "pentavalent_nitrogen": "valence", "unknown_element": "Xyz"}


def expected_examples() -> list[tuple[str, str]]:
    """(id, smiles) per data line of the example file, parsed here independently of hsafeat."""
    out = []
    for i, line in enumerate(data_lines(EXAMPLES)):
        parts = line.split(None, 1)
        out.append((parts[1].strip(), parts[0]) if len(parts) == 2 else (str(i), parts[0] if parts else ""))
    return out


@pytest.fixture(scope="module")
def examples_run(tiny_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("embed") / "examples.parquet"
    assert_ok(invoke(["embed", EXAMPLES, "-o", out], tiny_weights))
    return out


@pytest.fixture(scope="module")
def dims(tiny_weights: Path) -> dict[str, int]:
    enc = json.loads((tiny_weights / "config.json").read_text())["encoder"]
    n_levels = enc["n_layers"] + 1
    return {"fused": 2 * enc["d_out"], **{f"level_{i}": enc["d_out"] for i in range(n_levels)}, "motif": enc["d_out"],
            "pooled": 2 * enc["d_out"] + n_levels * enc["d_model"]}


# ------------------------------------------------------------------------------ the example file


def test_examples_one_row_per_line_in_order(examples_run: Path) -> None:
    expected = expected_examples()
    assert len(expected) == 20  # 22 lines: 1 comment, 1 blank (a row), 20 rows
    t = read(examples_run)
    assert t.num_rows == len(expected)
    assert t.column("row_idx").to_pylist() == list(range(len(expected)))
    assert t.column("id").to_pylist() == [i for i, _ in expected]
    assert t.column("smiles").to_pylist() == [s for _, s in expected]


def test_examples_valid_and_error_columns(examples_run: Path) -> None:
    rows = read(examples_run, ["id", "smiles", "canonical_smiles", "valid", "error"]).to_pylist()
    blank = [r for r in rows if r["smiles"] == ""]
    assert len(blank) == 1 and blank[0]["valid"] is False and "empty" in blank[0]["error"].lower()
    for r in rows:
        if r["id"] in KNOWN_BAD:
            assert r["valid"] is False, r
            assert KNOWN_BAD[r["id"]].lower() in r["error"].lower(), r
            assert r["canonical_smiles"] is None
        elif r["smiles"]:
            assert r["valid"] is True, r
            assert r["error"] is None
            assert r["canonical_smiles"]
    assert sum(not r["valid"] for r in rows) == len(KNOWN_BAD) + 1


def test_examples_embeddings_null_for_invalid_finite_for_valid(examples_run: Path, dims: dict[str, int]) -> None:
    t = read(examples_run)
    valid = np.asarray(t.column("valid").to_pylist())
    for name, d in dims.items():
        col = t.column(name)
        assert col.type == pa.list_(pa.float32(), d), (name, col.type)
        assert col.is_null().to_pylist() == list(~valid), name  # null, not a zero vector
        x = embedding_matrix(t, name)
        assert np.isfinite(x[valid]).all(), name
        assert (np.abs(x[valid]).sum(1) > 0).all(), name
        # the null slots must not hide zeros that a careless reader would take for data
        assert np.isnan(x[~valid]).all()


def test_examples_schema_and_metadata(examples_run: Path, tiny_weights: Path, dims: dict[str, int]) -> None:
    t = read(examples_run)
    assert t.column_names == BASE_COLUMNS + list(dims)
    assert t.schema.field("row_idx").type == pa.int64()
    assert t.schema.field("valid").type == pa.bool_()
    meta = metadata(examples_run)
    card = json.loads((tiny_weights / "card.json").read_text())
    assert meta["weights"]["name"] == tiny_weights.name == card["name"]
    assert meta["weights"]["sha256"] == card["sha256"]
    assert meta["weights"]["sha256"] == hashlib.sha256((tiny_weights / "model.safetensors").read_bytes()).hexdigest()
    assert meta["input_sha256"] == hashlib.sha256(EXAMPLES.read_bytes()).hexdigest()
    assert meta["recommended_column"] == "fused"   # the test weights have no readout and name none
    assert meta["columns"] == dims
    assert meta["layout"] == "list" and meta["dtype"] == "float32"
    assert meta["rows"] == {"total": 20, "valid": 16, "invalid": 4}
    assert meta["rows"]["valid"] == sum(t.column("valid").to_pylist())
    assert meta["schema"].startswith("hsafeat-embeddings-")
    for key in ("hsafeat", "rdkit", "torch", "created_at", "max_atoms"):
        assert key in meta, key


def test_summary_line_on_stderr(tiny_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.parquet"
    result = invoke(["embed", EXAMPLES, "-o", out], tiny_weights)
    assert_ok(result)
    assert result.stdout == ""  # stdout stays clean for pipelines
    assert "20 molecules, 16 valid, 4 invalid" in result.stderr


# ------------------------------------------------------------------------------ columns and layout


def test_levels_selects_columns(tiny_weights: Path, tmp_path: Path, examples_run: Path) -> None:
    out = tmp_path / "two.parquet"
    assert_ok(invoke(["embed", EXAMPLES, "-o", out, "--levels", "fused, motif"], tiny_weights))
    t = read(out)
    assert t.column_names == BASE_COLUMNS + ["fused", "motif"]
    assert set(metadata(out)["columns"]) == {"fused", "motif"}
    full = read(examples_run)
    for name in ("fused", "motif"):
        np.testing.assert_array_equal(embedding_matrix(t, name), embedding_matrix(full, name))


def test_unknown_level_is_a_usage_error(tiny_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.parquet"
    result = invoke(["embed", EXAMPLES, "-o", out, "--levels", "fused,level_99"], tiny_weights)
    assert_one_line_error(result, 2, "level_99", "motif")  # names the bad level and lists the good ones
    assert not out.exists()


@pytest.mark.parametrize("levels", ["", ",", " , "])
def test_empty_levels_is_a_usage_error(tiny_weights: Path, tmp_path: Path, levels: str) -> None:
    out = tmp_path / "x.parquet"
    result = invoke(["embed", EXAMPLES, "-o", out, "--levels", levels], tiny_weights)
    assert_one_line_error(result, 2, "--levels", "fused", "motif")  # says so and lists the columns
    assert not out.exists()


def test_unknown_layout_is_a_usage_error(tiny_weights: Path, tmp_path: Path) -> None:
    result = invoke(["embed", EXAMPLES, "-o", tmp_path / "x.parquet", "--layout", "tall"], tiny_weights)
    assert_one_line_error(result, 2, "layout")


def test_wide_layout(tiny_weights: Path, tmp_path: Path, examples_run: Path, dims: dict[str, int]) -> None:
    out = tmp_path / "wide.parquet"
    assert_ok(invoke(["embed", EXAMPLES, "-o", out, "--layout", "wide", "--levels", "fused,level_0"], tiny_weights))
    t = read(out)
    fused = [f"fused_{i:03d}" for i in range(dims["fused"])]
    level0 = [f"level_0_{i:03d}" for i in range(dims["level_0"])]
    assert t.column_names == BASE_COLUMNS + fused + level0
    assert all(t.schema.field(c).type == pa.float32() for c in fused + level0)
    assert metadata(out)["layout"] == "wide"
    valid = np.asarray(t.column("valid").to_pylist())
    wide = np.stack([t.column(c).to_numpy(zero_copy_only=False) for c in fused], axis=1)
    assert t.column("fused_000").is_null().to_pylist() == list(~valid)
    np.testing.assert_array_equal(wide[valid], embedding_matrix(read(examples_run), "fused")[valid])


# ------------------------------------------------------------------------------ input kinds


CSV = "cid,Input_SMILES,mw\nA-1,CCO,46.07\nA-2,C1CC,0\nA-3,c1ccccc1,78.11\n"


def test_csv_autodetects_smiles_column(tiny_weights: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text(CSV)
    out = tmp_path / "a.parquet"
    assert_ok(invoke(["embed", src, "-o", out], tiny_weights))
    t = read(out, ["id", "smiles", "valid"])
    assert t.column("smiles").to_pylist() == ["CCO", "C1CC", "c1ccccc1"]
    assert t.column("id").to_pylist() == ["0", "1", "2"]  # no id-like column: the row index
    assert t.column("valid").to_pylist() == [True, False, True]

    out2 = tmp_path / "b.parquet"
    assert_ok(invoke(["embed", src, "-o", out2, "--id-column", "cid"], tiny_weights))
    assert read(out2, ["id"]).column("id").to_pylist() == ["A-1", "A-2", "A-3"]


def test_csv_explicit_smiles_column(tiny_weights: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("id,smiles,other_smiles\nm1,CCO,C\nm2,CC,N\n")
    out = tmp_path / "a.parquet"
    assert_ok(invoke(["embed", src, "-o", out, "--smiles-column", "other_smiles"], tiny_weights))
    t = read(out, ["id", "smiles"])
    assert t.column("smiles").to_pylist() == ["C", "N"]
    assert t.column("id").to_pylist() == ["m1", "m2"]


def test_gzip_input_matches_plain(tiny_weights: Path, tmp_path: Path, examples_run: Path) -> None:
    src = tmp_path / "molecules.smi.gz"
    src.write_bytes(gzip.compress(EXAMPLES.read_bytes(), mtime=0))
    out = tmp_path / "gz.parquet"
    assert_ok(invoke(["embed", src, "-o", out], tiny_weights))
    t, plain = read(out), read(examples_run)
    assert t.select(BASE_COLUMNS).equals(plain.select(BASE_COLUMNS))
    np.testing.assert_array_equal(embedding_matrix(t, "fused"), embedding_matrix(plain, "fused"))
    assert metadata(out)["input_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()  # the bytes on disk


def test_stdin(tiny_weights: Path, tmp_path: Path) -> None:
    data = b"CCO ethanol\nC1CC broken\nc1ccccc1 benzene\n"
    out = tmp_path / "stdin.parquet"
    assert_ok(invoke(["embed", "-", "-o", out], tiny_weights, input=data))
    t = read(out, ["row_idx", "id", "smiles", "valid"])
    assert t.column("id").to_pylist() == ["ethanol", "broken", "benzene"]
    assert t.column("valid").to_pylist() == [True, False, True]
    meta = metadata(out)
    assert meta["input_sha256"] == hashlib.sha256(data).hexdigest()
    assert meta["rows"] == {"total": 3, "valid": 2, "invalid": 1}


def test_named_pipe_and_stdin_table(tiny_weights: Path, tmp_path: Path) -> None:
    """`hsafeat embed /dev/stdin`, `<(...)` and FIFOs are read once, as stdin is: every row arrives
    (they once gave 0 rows and exit 0), and a CSV on stdin is read as a table, not as .smi lines."""
    data = b"id,smiles,y\nm1,CCO,1\nm2,C1CC,0\nm3,c1ccccc1,1\n"
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_bytes, args=(data,))
    writer.start()
    out = tmp_path / "fifo.parquet"
    assert_ok(invoke(["embed", fifo, "-o", out], tiny_weights))
    writer.join()
    t = read(out, ["id", "smiles", "valid"])
    assert t.column("id").to_pylist() == ["m1", "m2", "m3"]
    assert t.column("valid").to_pylist() == [True, False, True]
    assert metadata(out)["input_sha256"] == hashlib.sha256(data).hexdigest()
    piped = tmp_path / "stdin.parquet"
    assert_ok(invoke(["embed", "-", "-o", piped], tiny_weights, input=data))
    assert read(piped, ["id", "smiles", "valid"]).equals(t)


def test_stdin_needs_output(tiny_weights: Path) -> None:
    assert_one_line_error(invoke(["embed", "-"], tiny_weights, input=b"CCO\n"), 2, "--output")


# ------------------------------------------------------------------------------ output file


@pytest.mark.parametrize("name", ["mols.smi", "mols.smi.gz", "mols.csv", "mols.txt"])
def test_default_output_name(tiny_weights: Path, tmp_path: Path, name: str) -> None:
    text = "smiles,id\nCCO,e\nC,m\n" if name.endswith(".csv") else "CCO e\nC m\n"
    src = tmp_path / name
    src.write_bytes(gzip.compress(text.encode(), mtime=0) if name.endswith(".gz") else text.encode())
    assert_ok(invoke(["embed", src], tiny_weights))
    expected = tmp_path / "mols.embeddings.parquet"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, expected.name])  # no temp files
    assert read(expected, ["id"]).column("id").to_pylist() == ["e", "m"]


def test_success_leaves_only_the_output(tiny_weights: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.smi"
    shutil.copy(EXAMPLES, src)
    out = tmp_path / "out.parquet"
    out.write_bytes(b"an older result")  # replaced atomically
    assert_ok(invoke(["embed", src, "-o", out, "--overwrite"], tiny_weights))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.smi", "out.parquet"]
    assert read(out).num_rows == 20


def test_failed_run_leaves_no_output(tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read error after row groups were already written to the temporary file: nothing appears at
    the destination, no temp file is left, and an earlier file of the same name is untouched.
    Chunks and row groups are shrunk to 8 rows so that this happens with a few dozen molecules."""
    import hsafeat.pipeline

    monkeypatch.setattr(hsafeat.pipeline, "embed_file", functools.partial(hsafeat.pipeline.embed_file, chunk_size=8))
    lines = b"".join(b"C" * (1 + i % 3) + b"O m%d\n" % i for i in range(40))
    data = gzip.compress(lines, mtime=0)
    src = tmp_path / "cut.smi.gz"
    src.write_bytes(data[:-4])  # every line decodes; the gzip trailer is cut
    out = tmp_path / "out.parquet"
    result = invoke(["embed", src, "-o", out, "--row-group-size", "8"], tiny_weights)
    assert_one_line_error(result, 1, "cut.smi.gz")
    assert not out.exists()
    assert tmp_leftovers(tmp_path) == []

    out.write_bytes(b"precious")
    assert_one_line_error(invoke(["embed", src, "-o", out, "--overwrite"], tiny_weights), 1)
    assert out.read_bytes() == b"precious"
    assert tmp_leftovers(tmp_path) == []


# ------------------------------------------------------------------------------ determinism


def test_same_input_twice_is_byte_identical(tiny_weights: Path, tmp_path: Path, examples_run: Path,
                                            dims: dict[str, int]) -> None:
    out = tmp_path / "again.parquet"
    assert_ok(invoke(["embed", EXAMPLES, "-o", out], tiny_weights))
    a, b = read(examples_run), read(out)
    assert a.select(BASE_COLUMNS).equals(b.select(BASE_COLUMNS))
    valid = np.asarray(a.column("valid").to_pylist())
    for name in dims:
        assert a.column(name).is_null().equals(b.column(name).is_null())
        assert embedding_matrix(a, name)[valid].tobytes() == embedding_matrix(b, name)[valid].tobytes(), name


def test_encode_in_workers_equals_the_main_process(tiny_weights: Path, tmp_path: Path, examples_run: Path,
                                                  dims: dict[str, int]) -> None:
    """Workers that featurize and encode write the same bytes as the main process encoding; the
    Python API with 3-row chunks spreads 7 chunks over the 2 workers and must keep input order."""
    from hsafeat.engine import Embedder
    from hsafeat.io import open_input
    from hsafeat.pipeline import embed_file

    cli, api = tmp_path / "cli.parquet", tmp_path / "api.parquet"
    assert_ok(invoke(["embed", EXAMPLES, "-o", cli, "--encode-in-workers", "--workers", "2"], tiny_weights))
    summary = embed_file(open_input(str(EXAMPLES)), api, Embedder(str(tiny_weights)), chunk_size=3, workers=2,
                         encode_in_workers=True)
    assert summary.n_rows == 20
    want = read(examples_run)
    valid = np.asarray(want.column("valid").to_pylist())
    for out in (cli, api):
        got = read(out)
        assert got.select(BASE_COLUMNS).equals(want.select(BASE_COLUMNS))
        for name in dims:
            assert got.column(name).is_null().equals(want.column(name).is_null())
            assert embedding_matrix(got, name)[valid].tobytes() == embedding_matrix(want, name)[valid].tobytes(), name


def test_encode_in_workers_refuses_the_gpu(tiny_weights: Path, tmp_path: Path) -> None:
    result = invoke(["embed", EXAMPLES, "-o", tmp_path / "o.parquet", "--encode-in-workers", "--device", "cuda"],
                    tiny_weights)
    assert_one_line_error(result, 2, "--encode-in-workers")


def test_batch_size_does_not_change_embeddings(tiny_weights: Path, tmp_path: Path, dims: dict[str, int]) -> None:
    one, many = tmp_path / "b1.parquet", tmp_path / "b64.parquet"
    assert_ok(invoke(["embed", EXAMPLES, "-o", one, "--batch-size", "1"], tiny_weights))
    assert_ok(invoke(["embed", EXAMPLES, "-o", many, "--batch-size", "64"], tiny_weights))
    a, b = read(one), read(many)
    valid = np.asarray(a.column("valid").to_pylist())
    for name in dims:
        np.testing.assert_allclose(embedding_matrix(a, name)[valid], embedding_matrix(b, name)[valid],
                                   atol=1e-5, rtol=0, err_msg=name)


def test_help_shows_the_install_extras():
    """Rich reads '[ray]' as markup and drops it unless escaped."""
    result = invoke(["embed", "--help"])
    assert "pip install 'hsafeat[ray]'" in result.output


def test_desc_units_real_from_the_cli(tmp_path) -> None:
    """--desc-units real writes desc_pred as value * std + mean and says so in the metadata."""
    import json

    import numpy as np
    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from hsafeat.cli import app

    src = tmp_path / "m.smi"
    src.write_text("CCO\nc1ccccc1O\n")
    outs = {}
    for units in ("standard", "real"):
        out = tmp_path / f"{units}.parquet"
        result = CliRunner().invoke(app, ["embed", str(src), "-o", str(out), "--device", "cpu", "--desc-units", units])
        assert result.exit_code == 0, result.output
        outs[units] = out
    meta = json.loads(pq.read_schema(outs["real"]).metadata[b"hsafeat"])
    assert meta["desc_pred_units"] == "real"
    from hsafeat.weights import load_desc_targets, load_weights

    targets = load_desc_targets(load_weights(None))
    std = np.stack(pq.read_table(outs["standard"]).column("desc_pred").to_pylist())
    real = np.stack(pq.read_table(outs["real"]).column("desc_pred").to_pylist())
    np.testing.assert_allclose(real, std * np.asarray(targets.std) + np.asarray(targets.mean), rtol=1e-5, atol=1e-4)
