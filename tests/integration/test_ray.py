"""The Ray engine writes the same file as the local engine, streams its input (a bounded number of
chunks ahead of what is written), resumes, and asks Ray for GPUs as --device says (skipped without
the `ray` extra). One local Ray (2 CPUs) serves the module: its start-up is the slow part."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hsafeat.io import InputRow, InputSource, open_input
from tests.cli import REPO, assert_ok, invoke, metadata, read

ray = pytest.importorskip("ray")

from hsafeat.distributed import ClusterError, actor_gpus, embed_file_ray  # noqa: E402 - after the skip


@pytest.fixture(scope="module")
def thousand(tmp_path_factory: pytest.TempPathFactory) -> Path:
    drugs = [line.split()[0] for line in (REPO / "tests" / "data" / "drugs.smi").read_text().splitlines()]
    odd = ["", "C1CC", "[Na+].[Cl-]", "C[C@H](N)C(=O)O", "not smiles", "CC(C)" * 40, "[Xe]"]
    lines = [f"{s} m{i}" if s else "" for i, s in enumerate((drugs + odd) * 28)][:1000]
    path = tmp_path_factory.mktemp("ray") / "thousand.smi"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def local_output(thousand: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the local engine writes for `thousand`: the reference every Ray run must equal."""
    out = tmp_path_factory.mktemp("local") / "local.parquet"
    assert_ok(invoke(["embed", thousand, "-o", out, "--workers", "0"]))
    return out


@pytest.fixture(scope="module")
def local_ray():  # noqa: ANN201
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


class ReadAhead:
    """Wraps a source's chunks and records, at each chunk handed out, how many rows had been read
    but not yet written (the progress callback reports rows written)."""

    def __init__(self, source: InputSource) -> None:
        self.read = self.written = self.most_ahead = 0
        inner = source.iter_chunks

        def counted(size: int, skip: int = 0) -> Iterator[list[InputRow]]:
            for chunk in inner(size, skip):
                self.read += len(chunk)
                self.most_ahead = max(self.most_ahead, self.read - self.written)
                yield chunk

        source.iter_chunks = counted  # type: ignore[method-assign]

    def progress(self, rows_done: int, valid_done: int) -> None:
        self.written = rows_done


def test_ray_engine_equals_local_engine(thousand: Path, local_output: Path, tmp_path: Path, local_ray: None) -> None:
    distributed = tmp_path / "ray.parquet"
    result = invoke(["embed", thousand, "-o", distributed, "--engine", "ray", "--actors", "2", "--batch-size", "64"])
    assert_ok(result)
    a, b = read(local_output), read(distributed)
    assert a.num_rows == 1000 and a.equals(b)  # every column bit for bit: ids, errors, rows in input order
    ma, mb = metadata(local_output), metadata(distributed)
    assert (ma.pop("engine"), mb.pop("engine")) == ("local", "ray")
    ma.pop("created_at"), mb.pop("created_at")
    assert ma == mb  # device ("cpu" on both) and row counts included


def test_driver_reads_a_bounded_number_of_chunks_ahead(thousand: Path, local_output: Path, tmp_path: Path,
                                                       local_ray: None) -> None:
    source = open_input(str(thousand))
    watch = ReadAhead(source)
    out = tmp_path / "ray.parquet"
    embed_file_ray(source=source, output=out, weights=None, actors=1, chunk_size=16, progress=watch.progress)
    assert watch.read == 1000
    # one actor: 2 chunks in flight, and the one being handed out
    assert watch.most_ahead <= 3 * 16, f"the driver read {watch.most_ahead} rows ahead of the file it writes"
    assert read(out).equals(read(local_output))


def test_an_interrupted_ray_run_resumes_to_the_same_file(thousand: Path, local_output: Path, tmp_path: Path,
                                                         local_ray: None) -> None:
    out = tmp_path / "ray.parquet"

    def interrupt_after_300(rows_done: int, valid_done: int) -> None:
        if rows_done >= 300:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        embed_file_ray(open_input(str(thousand)), out, None, actors=2, chunk_size=100, row_group_size=128,
                       progress=interrupt_after_300)
    assert not out.exists()
    summary = embed_file_ray(open_input(str(thousand)), out, None, actors=2, chunk_size=100, row_group_size=128,
                             resume=True)
    assert summary.resumed_rows == 256  # two finished row groups were kept
    assert read(out).equals(read(local_output))
    assert metadata(out)["rows"] == metadata(local_output)["rows"]


def test_the_callers_sigterm_handler_survives_ray_init(tmp_path: Path) -> None:
    """ray.init installs a SIGTERM handler that exits at once: the CLI's (SIGTERM ends the run as
    Ctrl-C does, keeping the finished row groups for --resume) must stay in place. In a process of
    its own, since only a Ray started by embed_file_ray shows it."""
    import subprocess
    import sys

    src = tmp_path / "few.smi"
    src.write_text("CCO a\nc1ccccc1 b\n")
    code = f"""
import signal
from hsafeat.distributed import embed_file_ray
from hsafeat.io import open_input
def mine(signum, frame):
    raise KeyboardInterrupt
signal.signal(signal.SIGTERM, mine)
embed_file_ray(open_input({str(src)!r}), __import__("pathlib").Path({str(tmp_path / "few.parquet")!r}), None, actors=1)
print("kept" if signal.getsignal(signal.SIGTERM) is mine else "replaced")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "kept"


@pytest.mark.parametrize(("device", "cluster_gpus", "asked"), [
    ("cpu", 0, 0), ("cpu", 4, 0), ("auto", 0, 0), ("auto", 2, 1), ("cuda", 1, 1),
])
def test_device_decides_the_gpus_each_actor_asks_for(device: str, cluster_gpus: float, asked: int) -> None:
    assert actor_gpus(device, cluster_gpus) == asked


def test_cuda_on_a_cluster_without_gpus_is_refused() -> None:
    with pytest.raises(ClusterError, match="no GPU"):
        actor_gpus("cuda", 0)


def test_embed_dataset_on_a_ray_dataset(local_ray: None) -> None:
    import pyarrow as pa

    from hsafeat.distributed import embed_dataset
    from hsafeat.engine import Embedder

    smiles = ["CCO", "c1ccccc1", "bad", "CC(=O)O"]
    ds = ray.data.from_arrow(pa.table({"smiles": smiles, "name": list("abcd")}))
    out = embed_dataset(ds, levels=["fused", "motif"], actors=1).to_arrow_refs()
    table = pa.concat_tables(ray.get(out))
    assert table.column_names == ["smiles", "name", "canonical_smiles", "valid", "error", "fused", "motif"]
    assert table.column("valid").to_pylist() == [True, True, False, True]
    expected = Embedder().embed(smiles).embeddings["fused"]
    got = table.column("fused").combine_chunks().values.to_numpy(zero_copy_only=False).reshape(4, -1)
    assert got[[0, 1, 3]].tobytes() == expected[[0, 1, 3]].tobytes()
