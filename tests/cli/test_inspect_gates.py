"""`hsafeat inspect-gates`: the terminal table, the long-format gates Parquet and the plot."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from tests.cli import (
    BAD,
    EXAMPLES,
    assert_ok,
    assert_one_line_error,
    data_lines,
    invoke,
    read,
    single_thread_torch,  # noqa: F401  (autouse fixture)
    tmp_leftovers,
)


@pytest.fixture(scope="module")
def n_levels(tiny_weights: Path) -> int:
    return json.loads((tiny_weights / "config.json").read_text())["encoder"]["n_layers"] + 1


@pytest.fixture(scope="module")
def gates_run(tiny_weights: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    out = tmp_path_factory.mktemp("gates") / "gates.parquet"
    result = invoke(["inspect-gates", EXAMPLES, "-o", out], tiny_weights)
    assert_ok(result)
    return result, out


def test_table_names_every_level_and_motif(gates_run, n_levels: int, tiny_weights: Path) -> None:  # noqa: ANN001
    result, _ = gates_run
    assert n_levels == 6
    table = result.stdout
    for source in [f"level_{i}" for i in range(n_levels)] + ["motif"]:
        assert source in table, source
    assert tiny_weights.name in table
    assert "16 valid" in table  # the shares are over valid molecules only
    assert "20 molecules, 16 valid" in result.stderr


def test_gates_parquet_shape_and_order(gates_run, n_levels: int) -> None:  # noqa: ANN001
    _, out = gates_run
    t = read(out)
    n_rows = len(data_lines(EXAMPLES))
    sources = [f"level_{i}" for i in range(n_levels)] + ["motif"]
    assert t.num_rows == n_rows * (n_levels + 1) == 20 * 7
    assert t.column("row_idx").to_pylist() == list(np.repeat(np.arange(n_rows), n_levels + 1))
    assert t.column("source").to_pylist() == sources * n_rows
    for name, typ in [("p_attention", pa.float32()), ("p_mamba", pa.float32()), ("projector", pa.string()),
                      ("valid", pa.bool_()), ("id", pa.string())]:
        assert t.schema.field(name).type == typ, name
    ids = t.column("id").to_pylist()[:: n_levels + 1]
    assert ids[:3] == ["aspirin", "caffeine", "ibuprofen"]
    meta = json.loads(t.schema.metadata[b"hsafeat"])
    assert meta["schema"].startswith("hsafeat-gates-")
    assert tmp_leftovers(out.parent) == []


def test_gate_probabilities(gates_run) -> None:  # noqa: ANN001
    _, out = gates_run
    rows = read(out).to_pylist()
    levels = [r for r in rows if r["source"] != "motif"]
    motif = [r for r in rows if r["source"] == "motif"]
    for r in levels:
        if not r["valid"]:
            continue
        assert r["p_attention"] + r["p_mamba"] == pytest.approx(1.0, abs=1e-5), r
        assert 0.0 <= r["p_mamba"] <= 1.0
        assert r["projector"] == ("mamba" if r["p_mamba"] > r["p_attention"] else "attention"), r
    for r in motif:
        assert r["p_attention"] is None and r["p_mamba"] is None and r["projector"] is None, r
    # the tiny weights' gate biases send some levels each way: both projectors must show up
    assert {r["projector"] for r in levels if r["valid"]} == {"mamba", "attention"}
    for r in rows:
        if r["valid"]:
            w = np.asarray(r["expert_weights"])
            assert (w >= 0).all() and w.sum() == pytest.approx(1.0, abs=1e-5), r


def test_invalid_molecules_have_null_gates(gates_run) -> None:  # noqa: ANN001
    _, out = gates_run
    rows = read(out).to_pylist()
    invalid = [r for r in rows if not r["valid"]]
    assert len(invalid) == 4 * 7  # 3 bad SMILES + the blank line, 7 sources each
    assert {r["id"] for r in invalid} >= {"not_a_ring", "pentavalent_nitrogen", "unknown_element"}
    for r in invalid:
        assert r["error"]
        assert r["p_attention"] is None and r["p_mamba"] is None and r["projector"] is None, r
        assert r["expert_weights"] is None, r


def test_without_output_prints_table_only(tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke(["inspect-gates", BAD / "duplicate_ids.smi"], tiny_weights)
    assert_ok(result)
    assert "motif" in result.stdout
    assert list(tmp_path.iterdir()) == []  # nothing written anywhere


def test_plot_writes_png(tiny_weights: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "gates.png"
    assert_ok(invoke(["inspect-gates", EXAMPLES, "--plot", png], tiny_weights))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 1000


@pytest.mark.parametrize("name", ["gates", "gates.xyz", "gates.tmp"])
def test_plot_format_is_checked_before_any_work(tiny_weights: Path, tmp_path: Path, name: str) -> None:
    """A plot name without a format matplotlib can write is refused before the run, not after it
    (with an error about an internal temp file, and -o already written)."""
    pytest.importorskip("matplotlib")
    out = tmp_path / "gates.parquet"
    result = invoke(["inspect-gates", EXAMPLES, "-o", out, "--plot", tmp_path / name], tiny_weights)
    assert_one_line_error(result, 2, "--plot", name, "png", "pdf", "svg")
    assert list(tmp_path.iterdir()) == []


def test_plot_format_follows_the_extension(tiny_weights: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    for name, magic in [("gates.svg", b"<?xml"), ("gates.PDF", b"%PDF"), ("gates.jpeg", b"\xff\xd8\xff")]:
        plot = tmp_path / name
        assert_ok(invoke(["inspect-gates", BAD / "duplicate_ids.smi", "--plot", plot], tiny_weights))
        assert plot.read_bytes().startswith(magic), name
    assert tmp_leftovers(tmp_path) == []


def test_empty_input_still_writes_gates_file(tiny_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "gates.parquet"
    assert_ok(invoke(["inspect-gates", BAD / "empty.smi", "-o", out], tiny_weights))
    t = read(out)
    assert t.num_rows == 0
    assert "p_mamba" in t.column_names


def test_no_valid_molecules_reports_no_shares(tiny_weights: Path, tmp_path: Path) -> None:
    src = tmp_path / "bad.smi"
    src.write_text("C1CC a\nXyz b\n")
    result = invoke(["inspect-gates", src], tiny_weights)
    assert_ok(result)
    assert "0 valid" in result.stdout
    assert "%" not in result.stdout


# ------------------------------------------------------------------------------ written like embeddings


def test_gates_file_is_fsynced_then_renamed(tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gate file goes through embed's atomic sink: its bytes reach the disk (fsync) before the
    rename that makes them appear at the destination."""
    import os

    synced: set[int] = set()
    renamed: list[tuple[int, str]] = []
    fsync, replace = os.fsync, os.replace

    def spy_fsync(fd: int) -> None:
        synced.add(os.fstat(fd).st_ino)
        fsync(fd)

    def spy_replace(src, dst) -> None:  # noqa: ANN001
        renamed.append((os.stat(src).st_ino, str(dst)))
        replace(src, dst)

    monkeypatch.setattr(os, "fsync", spy_fsync)
    monkeypatch.setattr(os, "replace", spy_replace)
    out = tmp_path / "gates.parquet"
    assert_ok(invoke(["inspect-gates", EXAMPLES, "-o", out], tiny_weights))
    inode = next(ino for ino, dst in renamed if dst == str(out))
    assert inode in synced
    assert tmp_leftovers(tmp_path) == []


def test_gates_rows_are_the_encoder_routing(gates_run, tiny_weights: Path) -> None:  # noqa: ANN001
    """Row for row, the file holds what the encoder computes for each molecule."""
    from hsafeat.engine import Embedder
    from hsafeat.io import open_input

    _, out = gates_run
    rows = [row for chunk in open_input(str(EXAMPLES)).iter_chunks(1024) for row in chunk]
    result = Embedder(str(tiny_weights)).embed([row.smiles for row in rows])
    t = read(out)
    n_sources = result.gate_probs.shape[1] + 1
    p_mamba = np.asarray(t.column("p_mamba").to_pylist(), dtype=float).reshape(len(rows), n_sources)
    np.testing.assert_array_equal(p_mamba[:, :-1], result.gate_probs[..., 1])
    assert np.isnan(p_mamba[:, -1]).all()  # motif: no gate
    weights = t.column("expert_weights").to_pylist()
    for i, valid in enumerate(result.valid):
        for s in range(n_sources):
            got = weights[i * n_sources + s]
            if valid:
                np.testing.assert_array_equal(np.asarray(got, dtype=np.float32), result.expert_weights[i, s])
            else:
                assert got is None
    assert t.column("error").to_pylist()[::n_sources] == result.errors


def test_interrupted_gates_run_leaves_nothing(tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A gate file cannot be resumed, so an interrupted run keeps no parts either."""
    import hsafeat.pipeline

    def interrupted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise KeyboardInterrupt
        yield

    monkeypatch.setattr(hsafeat.pipeline, "_featurized", interrupted)
    out = tmp_path / "gates.parquet"
    result = invoke(["inspect-gates", EXAMPLES, "-o", out], tiny_weights)
    assert result.exit_code == 130
    assert not out.exists()
    assert tmp_leftovers(tmp_path) == []
