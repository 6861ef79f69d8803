"""Never touch a user's file: an output never resolves to the input, an existing output needs
--overwrite (a --resume of its unfinished run excepted), options the chosen engine would ignore are
refused, and every refusal comes before any work: exit 2, one line."""
from __future__ import annotations

import functools
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hsafeat.output_paths import default_output
from tests.cli import (  # single_thread_torch: an autouse fixture
    EXAMPLES,
    assert_ok,
    assert_one_line_error,
    invoke,
    read,
    single_thread_torch,  # noqa: F401
    tmp_leftovers,
)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def assays(tmp_path: Path) -> Path:
    """A user's table: SMILES beside labels that exist nowhere else."""
    path = tmp_path / "assays.parquet"
    pq.write_table(pa.table({"smiles": ["CCO", "c1ccccc1", "C1CC"], "pIC50": [5.1, 7.3, 6.0]}), path)
    return path


# ------------------------------------------------------------------------------ the input is never an output


@pytest.mark.parametrize("name, expected", [
    ("assays.parquet", "assays.embeddings.parquet"), ("mols.smi.gz", "mols.embeddings.parquet"),
    ("mols.CSV", "mols.embeddings.parquet"), ("x.embeddings.parquet", "x.embeddings.embeddings.parquet"),
    ("noext", "noext.embeddings.parquet"),
])
def test_default_output_name_is_never_the_input(name: str, expected: str) -> None:
    assert default_output(f"data/{name}") == Path("data") / expected


def test_embed_without_output_keeps_the_input_table(tiny_weights: Path, assays: Path) -> None:
    before = digest(assays)
    assert_ok(invoke(["embed", assays], tiny_weights))
    assert digest(assays) == before  # the labels are still there
    out = assays.with_name("assays.embeddings.parquet")
    assert read(out, ["smiles", "valid"]).column("valid").to_pylist() == [True, True, False]
    assert sorted(p.name for p in assays.parent.iterdir()) == ["assays.embeddings.parquet", "assays.parquet"]


def spellings(assays: Path) -> Iterator[tuple[str, Path]]:
    (assays.parent / "sub").mkdir()
    yield "same path", assays
    yield "dot-dot", assays.parent / "sub" / ".." / assays.name
    (assays.parent / "link.parquet").symlink_to(assays)
    yield "symlink", assays.parent / "link.parquet"
    os.link(assays, assays.parent / "hard.parquet")
    yield "hard link", assays.parent / "hard.parquet"


@pytest.mark.parametrize("command", ["embed", "inspect-gates"])
def test_output_naming_the_input_is_refused(tiny_weights: Path, assays: Path, command: str) -> None:
    before = digest(assays)
    for how, out in spellings(assays):
        for overwrite in ([], ["--overwrite"]):  # --overwrite never covers the input
            result = invoke([command, assays, "-o", out, *overwrite], tiny_weights)
            assert_one_line_error(result, 2, "input")
            assert digest(assays) == before, how


def test_plot_naming_the_input_is_refused(tiny_weights: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.smi"
    src.write_bytes(EXAMPLES.read_bytes())
    assert_one_line_error(invoke(["inspect-gates", src, "--plot", src, "--overwrite"], tiny_weights), 2, "input")
    assert src.read_bytes() == EXAMPLES.read_bytes()
    same = tmp_path / "g.parquet"
    assert_one_line_error(invoke(["inspect-gates", src, "-o", same, "--plot", same], tiny_weights), 2, "--plot")


# ------------------------------------------------------------------------------ existing outputs need --overwrite


@pytest.mark.parametrize("command, option, name", [
    ("embed", "-o", "out.parquet"), ("inspect-gates", "-o", "gates.parquet"), ("inspect-gates", "--plot", "gates.png"),
])
def test_existing_output_needs_overwrite(tiny_weights: Path, tmp_path: Path, command: str, option: str,
                                         name: str) -> None:
    if option == "--plot":
        pytest.importorskip("matplotlib")
    out = tmp_path / name
    out.write_bytes(b"an earlier result")
    assert_one_line_error(invoke([command, EXAMPLES, option, out], tiny_weights), 2, str(out), "--overwrite")
    assert out.read_bytes() == b"an earlier result"
    assert_ok(invoke([command, EXAMPLES, option, out, "--overwrite"], tiny_weights))
    assert out.read_bytes() != b"an earlier result"
    assert tmp_leftovers(tmp_path) == []


def test_default_output_that_exists_needs_overwrite(tiny_weights: Path, tmp_path: Path) -> None:
    src = tmp_path / "mols.smi"
    src.write_bytes(EXAMPLES.read_bytes())
    out = tmp_path / "mols.embeddings.parquet"
    out.write_bytes(b"kept")
    assert_one_line_error(invoke(["embed", src], tiny_weights), 2, "--overwrite")
    assert out.read_bytes() == b"kept"


def test_refusal_comes_before_torch_loads(tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    out.write_bytes(b"kept")
    code = ("import sys\nfrom hsafeat.cli import main\ntry:\n    main()\nexcept SystemExit as e:\n"
            "    print(e.code, 'torch' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code, "embed", str(EXAMPLES), "-o", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["2", "False"], proc
    assert proc.stderr.count("\n") == 1 and "--overwrite" in proc.stderr


def test_resume_continues_an_unfinished_run_without_overwrite(tiny_weights: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """An --overwrite run over an earlier result is interrupted after two row groups: the earlier
    file is still there, and --resume (no --overwrite) finishes the run; a plain rerun, or a
    --resume with no unfinished run, still needs --overwrite."""
    import hsafeat.pipeline

    out = tmp_path / "out.parquet"
    args = ["embed", EXAMPLES, "-o", out, "--row-group-size", "8", "--workers", "0"]
    assert_ok(invoke(args, tiny_weights))
    whole = read(out)
    embedded = hsafeat.pipeline._embedded

    def interrupted_after_two_chunks(*a, **k):  # noqa: ANN002, ANN003, ANN202
        for i, item in enumerate(embedded(*a, **k)):
            if i == 2:
                raise KeyboardInterrupt
            yield item

    with monkeypatch.context() as m:
        m.setattr(hsafeat.pipeline, "embed_file", functools.partial(hsafeat.pipeline.embed_file, chunk_size=8))
        m.setattr(hsafeat.pipeline, "_embedded", interrupted_after_two_chunks)
        assert_one_line_error(invoke([*args, "--overwrite"], tiny_weights), 130, "--resume")
    assert read(out).equals(whole)  # the earlier result, untouched
    assert_one_line_error(invoke(args, tiny_weights), 2, "--overwrite")
    resumed = invoke([*args, "--resume"], tiny_weights)
    assert_ok(resumed)
    assert "resumed after 16" in resumed.stderr
    assert read(out).equals(whole)
    assert_one_line_error(invoke([*args, "--resume"], tiny_weights), 2, "--overwrite")  # nothing left to resume
    assert tmp_leftovers(tmp_path) == []


@pytest.mark.parametrize("command, option, what", [
    ("embed", "-o", "Parquet"), ("inspect-gates", "-o", "Parquet"), ("inspect-gates", "--plot", "plot"),
])
def test_stdout_is_not_an_output(tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str,
                                 option: str, what: str) -> None:
    """`-o -` reads like stdout, but Parquet (and a plot) cannot be streamed: refused, and no file named `-`."""
    monkeypatch.chdir(tmp_path)
    result = invoke([command, EXAMPLES, option, "-"], tiny_weights)
    assert_one_line_error(result, 2, option, what, "stdout", "file path")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ the Python API follows the same rules


def test_embed_file_never_writes_over_its_input(tiny_weights: Path, assays: Path) -> None:
    from hsafeat.engine import Embedder
    from hsafeat.io import open_input
    from hsafeat.output_paths import DestinationError
    from hsafeat.pipeline import embed_file

    embedder = Embedder(str(tiny_weights), device="cpu")
    before = digest(assays)
    for how, out in spellings(assays):
        with pytest.raises(DestinationError, match="is the input file"):
            embed_file(open_input(str(assays)), out, embedder)
        assert digest(assays) == before, how
        with pytest.raises(DestinationError, match="is the input file"):  # overwrite never covers the input
            embed_file(open_input(str(assays)), out, embedder, overwrite=True)
        assert digest(assays) == before, how
    with pytest.raises(DestinationError, match="stdout"):
        embed_file(open_input(str(assays)), Path("-"), embedder)
    assert tmp_leftovers(assays.parent) == []


def test_embed_file_needs_overwrite_to_replace_a_file(tiny_weights: Path, assays: Path) -> None:
    from hsafeat.engine import Embedder
    from hsafeat.io import open_input
    from hsafeat.output_paths import DestinationError
    from hsafeat.pipeline import embed_file

    embedder = Embedder(str(tiny_weights), device="cpu")
    out = assays.with_name("earlier.parquet")
    out.write_bytes(b"an earlier result")
    for resume in (False, True):  # resume=True continues only an unfinished run
        with pytest.raises(DestinationError, match="overwrite=True"):
            embed_file(open_input(str(assays)), out, embedder, resume=resume)
        assert out.read_bytes() == b"an earlier result"
    summary = embed_file(open_input(str(assays)), out, embedder, overwrite=True)
    assert summary.n_rows == 3
    assert read(out, ["valid"]).column("valid").to_pylist() == [True, True, False]
    assert tmp_leftovers(assays.parent) == []


def test_inspect_gates_api_follows_the_same_rules(tiny_weights: Path, assays: Path) -> None:
    from hsafeat.engine import Embedder
    from hsafeat.io import open_input
    from hsafeat.output_paths import DestinationError
    from hsafeat.pipeline import inspect_gates

    embedder = Embedder(str(tiny_weights), device="cpu")
    before = digest(assays)
    with pytest.raises(DestinationError, match="is the input file"):
        inspect_gates(open_input(str(assays)), assays, embedder, overwrite=True)
    assert digest(assays) == before
    out = assays.with_name("gates.parquet")
    out.write_bytes(b"an earlier result")
    with pytest.raises(DestinationError, match="overwrite=True"):
        inspect_gates(open_input(str(assays)), out, embedder)
    assert out.read_bytes() == b"an earlier result"
    summary, _ = inspect_gates(open_input(str(assays)), out, embedder, overwrite=True)
    assert summary.n_rows == 3


# ------------------------------------------------------------------------------ engine options are not ignored


@pytest.mark.parametrize("engine, extra, named", [
    ("local", ["--actors", "2"], "--actors"),
    ("local", ["--ray-address", "ray://head:10001"], "--ray-address"),
    ("ray", ["--workers", "2"], "--workers"),
    ("ray", ["--encode-in-workers"], "--encode-in-workers"),
])
def test_options_the_engine_ignores_are_refused(tiny_weights: Path, tmp_path: Path, engine: str, extra: list[str],
                                                 named: str) -> None:
    out = tmp_path / "out.parquet"
    result = invoke(["embed", EXAMPLES, "-o", out, "--engine", engine, *extra], tiny_weights)
    assert_one_line_error(result, 2, named, f"--engine {engine}")
    assert not out.exists()


# ------------------------------------------------------------------------------ defaults and choices


@pytest.mark.parametrize("command", ["embed", "inspect-gates"])
def test_help_lists_the_choices_and_device_defaults_to_auto(command: str) -> None:
    text = " ".join(invoke([command, "--help"]).output.split())
    assert "auto|cpu|cuda" in text
    assert "[default: auto]" in text
    if command == "embed":
        assert "list|wide" in text and "local|ray" in text and ".embeddings.parquet" in text


@pytest.mark.parametrize("option, value, choices", [("--device", "gpu", "'cuda'"), ("--layout", "tall", "'wide'"),
                                                     ("--engine", "spark", "'ray'")])
def test_a_bad_choice_is_one_line_naming_the_choices(tiny_weights: Path, tmp_path: Path, option: str, value: str,
                                                     choices: str) -> None:
    result = invoke(["embed", EXAMPLES, "-o", tmp_path / "o.parquet", option, value], tiny_weights)
    assert_one_line_error(result, 2, option, value, choices)


def test_unknown_option_is_one_line(tmp_path: Path) -> None:
    assert_one_line_error(invoke(["embed", EXAMPLES, "--no-such-option"]), 2, "--no-such-option", "--help")


def test_default_device_on_a_cpu_machine_is_the_cpu_output(tiny_weights: Path, tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("auto picks the GPU here")
    auto, cpu = tmp_path / "auto.parquet", tmp_path / "cpu.parquet"
    assert_ok(invoke(["embed", EXAMPLES, "-o", auto], tiny_weights))
    assert_ok(invoke(["embed", EXAMPLES, "-o", cpu, "--device", "cpu"], tiny_weights))
    assert read(auto).equals(read(cpu))


def test_version() -> None:
    import hsafeat

    result = invoke(["--version"])
    assert_ok(result)
    assert result.stdout == f"hsafeat {hsafeat.__version__}\n"


@pytest.mark.parametrize("command", [[], ["embed"], ["inspect-gates"], ["info"]])
def test_h_is_help(command: list[str]) -> None:
    short, long = invoke([*command, "-h"]), invoke([*command, "--help"])
    assert_ok(short)
    assert "Usage" in short.stdout and short.stdout == long.stdout
