"""Featurization in worker processes returns the chunks in input order, bit for bit what the main
process alone computes."""
import contextlib
from pathlib import Path

import numpy as np
import pytest

import hsafeat.workers as workers
from hsafeat import cores
from hsafeat.chem.featurize import featurize
from hsafeat.io import InputRow

DRUGS = Path(__file__).parents[1] / "data" / "drugs.smi"
VOCAB = {"[UNK]": 0, "c1ccccc1": 1, "CC": 2}


def chunks(size: int = 3) -> list[list[InputRow]]:
    smiles = [ln.split()[0] for ln in DRUGS.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    smiles += ["not a smiles", ""]
    rows = [InputRow(i, str(i), s) for i, s in enumerate(smiles)]
    return [rows[i:i + size] for i in range(0, len(rows), size)]


def assert_same(got, want) -> None:
    assert [c for c, _ in got] == [c for c, _ in want]
    for (_, a), (_, b) in zip(got, want):
        assert a.canonical == b.canonical and a.errors == b.errors
        for ga, gb in zip(a.graphs, b.graphs):
            assert (ga is None) == (gb is None)
            if ga is not None:
                for name in vars(ga):
                    assert np.array_equal(getattr(ga, name), getattr(gb, name)), name


def serial() -> list:
    return [(c, featurize([r.smiles for r in c], VOCAB, 500)) for c in chunks()]


def test_worker_path_equals_the_serial_path() -> None:
    assert_same(list(workers.featurized_chunks(iter(chunks()), VOCAB, 500, workers=2)), serial())


def test_workers_do_not_load_torch() -> None:
    """Workers come from a torch-free fork server: ~115 MiB each, not a copy of the parent's torch."""
    import os
    import sys
    from concurrent.futures import ProcessPoolExecutor

    import pytest

    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc")
    import torch  # noqa: F401 - the parent has torch loaded, as the CLI's main process does

    with ProcessPoolExecutor(1, mp_context=workers._context()) as pool:
        pid = pool.submit(os.getpid).result()
        with open(f"/proc/{pid}/maps") as f:
            assert "libtorch" not in f.read()


def test_ramped_splits_only_the_first_chunk() -> None:
    rows = [InputRow(i, str(i), "C") for i in range(1500)]
    chunks = [rows[:1024], rows[1024:]]
    pieces = list(workers.ramped(iter(chunks), smallest=128))
    assert [len(p) for p in pieces] == [128, 128, 256, 512, 476]
    assert [r for p in pieces for r in p] == rows
    assert list(workers.ramped(iter([]))) == []
    assert [len(p) for p in workers.ramped(iter([rows[:100]]), smallest=128)] == [100]


def test_worker_counts(monkeypatch) -> None:  # noqa: ANN001
    from hsafeat.cli import resolve_workers

    monkeypatch.setattr(cores, "available_cores", lambda: 8)
    assert resolve_workers(None, 100) == 0          # small inputs: no pool
    assert resolve_workers(None, 600) == 4          # a 2,000-row file gets its worker
    assert resolve_workers(None, 10_000) == 4       # half the cores featurize
    assert resolve_workers(3, 100) == 3
    assert resolve_workers(None, 100, encode_in_workers=True) == 8   # one encoding worker per core
    assert resolve_workers(0, 100, encode_in_workers=True) == 1
    assert resolve_workers(3, 10_000, encode_in_workers=True) == 3


@pytest.mark.parametrize("fails", [False, True], ids=["returns", "raises"])
def test_embed_file_gives_torch_its_thread_count_back(fails: bool, tiny_weights: Path, tmp_path: Path) -> None:
    """A Python API caller's torch thread count survives embed_file, whatever the run sets."""
    import torch

    from hsafeat.engine import Embedder
    from hsafeat.io import open_input
    from hsafeat.pipeline import embed_file

    def progress(_done: int, _valid: int) -> None:
        if fails:
            raise RuntimeError("the caller's callback failed")

    before = torch.get_num_threads()
    chosen = cores.available_cores() + 1  # neither what share_cores gives torch nor its cap
    torch.set_num_threads(chosen)
    try:
        with pytest.raises(RuntimeError, match="callback failed") if fails else contextlib.nullcontext():
            embed_file(open_input(str(DRUGS)), tmp_path / "out.parquet", Embedder(str(tiny_weights)), workers=1,
                       progress=progress)
        assert torch.get_num_threads() == chosen
    finally:
        torch.set_num_threads(before)


def test_share_cores_counts_the_cores_this_process_may_use(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(cores, "available_cores", lambda: 3)
    with workers.torch_threads_restored():
        workers.share_cores(1)
        assert torch.get_num_threads() == 2   # the cores the worker leaves
        torch.set_num_threads(16)
        workers.share_cores(0)
        assert torch.get_num_threads() == 1   # no workers: this process featurizes, the encoder gets one thread
        torch.set_num_threads(16)
        workers.share_cores(0, "cuda")
        assert torch.get_num_threads() == 3   # a GPU encoder: capped, torch's default counts the machine
        torch.set_num_threads(2)
        workers.share_cores(0, "cuda")
        assert torch.get_num_threads() == 2   # a lower count chosen by the caller stays


@pytest.mark.parametrize("run", ["embed_file", "inspect_gates"])
def test_runs_without_workers_encode_on_one_thread(run: str, tiny_weights: Path, tmp_path: Path,
                                                   encoder_threads: list[int], caller_threads: int) -> None:
    """Featurizing in this process, the CPU encoder runs on one torch thread as in the CLI's
    default for small inputs; the caller's thread count comes back afterwards."""
    import torch

    from hsafeat import pipeline
    from hsafeat.engine import Embedder
    from hsafeat.io import open_input

    embedder = Embedder(str(tiny_weights))
    if run == "embed_file":
        pipeline.embed_file(open_input(str(DRUGS)), tmp_path / "out.parquet", embedder, workers=0)
    else:
        pipeline.inspect_gates(open_input(str(DRUGS)), None, embedder, workers=0)
    assert encoder_threads and set(encoder_threads) == {1}
    assert torch.get_num_threads() == caller_threads
