"""The Ray engine writes the same file as the local engine (skipped without the `ray` extra)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import REPO, assert_ok, invoke, metadata, read

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def thousand(tmp_path_factory: pytest.TempPathFactory) -> Path:
    drugs = [line.split()[0] for line in (REPO / "tests" / "data" / "drugs.smi").read_text().splitlines()]
    odd = ["", "C1CC", "[Na+].[Cl-]", "C[C@H](N)C(=O)O", "not smiles", "CC(C)" * 40, "[Xe]"]
    lines = [f"{s} m{i}" if s else "" for i, s in enumerate((drugs + odd) * 28)][:1000]
    path = tmp_path_factory.mktemp("ray") / "thousand.smi"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def local_ray():  # noqa: ANN201
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def test_ray_engine_equals_local_engine(thousand: Path, tmp_path: Path, local_ray: None) -> None:
    local, distributed = tmp_path / "local.parquet", tmp_path / "ray.parquet"
    assert_ok(invoke(["embed", thousand, "-o", local, "--workers", "0"]))
    result = invoke(["embed", thousand, "-o", distributed, "--engine", "ray", "--actors", "2", "--batch-size", "64"])
    assert_ok(result)
    a, b = read(local), read(distributed)
    assert a.num_rows == 1000 and a.equals(b)  # embeddings bit for bit, rows in input order
    ma, mb = metadata(local), metadata(distributed)
    assert (ma.pop("engine"), mb.pop("engine")) == ("local", "ray")
    ma.pop("created_at"), mb.pop("created_at")
    assert ma == mb


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
