"""Tests for hsafeat.io: streaming input readers and the atomic Parquet sink."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hsafeat.io import InputError, InputRow, open_input
from hsafeat.output import OutputError, ParquetSink, check_writable, embedding_schema, read_hsafeat_metadata


def _read(path: Path | str, **kw: object) -> list[tuple[int, str, str]]:
    src = open_input(str(path), **kw)  # type: ignore[arg-type]
    return [(r.row_idx, r.id, r.smiles) for r in src.rows()]


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


# ------------------------------------------------------------------ .smi


def test_smi_ids_comments_blank_lines(tmp_path: Path) -> None:
    data = b"# a comment\nCCO ethanol\n\nc1ccccc1\tbenzene ring \n  # indented comment\nC\n\n\n"
    rows = _read(_write(tmp_path, "in.smi", data))
    assert rows == [
        (0, "ethanol", "CCO"),
        (1, "1", ""),
        (2, "benzene ring", "c1ccccc1"),
        (3, "3", "C"),
    ]


def test_smi_final_line_without_newline_and_blank_only(tmp_path: Path) -> None:
    assert _read(_write(tmp_path, "a.smi", b"C\nCC")) == [(0, "0", "C"), (1, "1", "CC")]
    assert _read(_write(tmp_path, "b.smi", b"\n\n")) == []
    assert _read(_write(tmp_path, "c.smi", b"")) == []


def test_smi_crlf_bom_header(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbfSMILES\tName\r\nCCO\tx1\r\n\r\nCCN\r\n"
    assert _read(_write(tmp_path, "in.smi", data)) == [
        (0, "x1", "CCO"),
        (1, "1", ""),
        (2, "2", "CCN"),
    ]


def test_smi_header_only_first_non_comment_line(tmp_path: Path) -> None:
    data = b"# comment\nsmiles\nCCO\nsmiles\n"
    rows = _read(_write(tmp_path, "in.smi", data))
    assert rows == [(0, "0", "CCO"), (1, "1", "smiles")]


def test_smi_non_utf8_line_kept(tmp_path: Path) -> None:
    rows = _read(_write(tmp_path, "in.smi", b"CCO\nC\xff\xfeC bad\nCN\n"))
    assert [r[0] for r in rows] == [0, 1, 2]
    assert rows[1][1] == "bad" and "\ufffd" in rows[1][2]


def test_unknown_extension_read_as_smi(tmp_path: Path) -> None:
    assert _read(_write(tmp_path, "mols.dat", b"CCO a\n")) == [(0, "a", "CCO")]


def test_gz_smi_and_sha256_of_compressed_bytes(tmp_path: Path) -> None:
    raw = gzip.compress(b"CCO a\nCCN b\n")
    p = _write(tmp_path, "in.smi.gz", raw)
    src = open_input(str(p))
    assert [(r.id, r.smiles) for r in src.rows()] == [("a", "CCO"), ("b", "CCN")]
    assert src.sha256() == hashlib.sha256(raw).hexdigest()


def test_sha256_matches_file_bytes(tmp_path: Path) -> None:
    data = b"C\n" * 50_000 + b"# trailing comment\n\n"
    p = _write(tmp_path, "in.smi", data)
    src = open_input(str(p))
    assert sum(1 for _ in src.rows()) == 50_000
    assert src.sha256() == hashlib.sha256(data).hexdigest()


def test_rows_is_lazy_and_single_use(tmp_path: Path) -> None:
    src = open_input(str(_write(tmp_path, "in.smi", b"C\nCC\nCCC\n")))
    it = src.rows()
    assert next(it) == InputRow(0, "0", "C")
    it.close()
    with pytest.raises(RuntimeError):
        next(src.rows())


def test_iter_chunks(tmp_path: Path) -> None:
    src = open_input(
        str(_write(tmp_path, "in.smi", b"".join(b"C%d\n" % i for i in range(7))))
    )
    chunks = list(src.iter_chunks(3))
    assert [len(c) for c in chunks] == [3, 3, 1]
    assert [r.row_idx for c in chunks for r in c] == list(range(7))


def test_gzip_detected_by_magic_behind_plain_extension(tmp_path: Path) -> None:
    assert _read(_write(tmp_path, "in.smi", gzip.compress(b"CCO a\n"))) == [
        (0, "a", "CCO")
    ]


class _CountingStdin:
    """Fake stdin that records how many bytes have been pulled from it."""

    def __init__(self, data: bytes) -> None:
        self._data, self.pulled = io.BytesIO(data), 0
        self.buffer = self

    def read(self, n: int = -1) -> bytes:
        out = self._data.read(n)
        self.pulled += len(out)
        return out


def test_rows_stream_without_reading_everything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    line = b"C" * 79 + b"\n"
    fake = _CountingStdin(line * 100_000)  # 8 MB
    monkeypatch.setattr(sys, "stdin", fake)
    src = open_input("-")
    it = src.rows()
    assert next(it).smiles == line.strip().decode()
    assert fake.pulled < 1 << 20
    assert sum(1 for _ in it) == 99_999 and fake.pulled == 8_000_000


def test_truncated_gzip_is_input_error(tmp_path: Path) -> None:
    p = _write(tmp_path, "in.smi.gz", gzip.compress(b"CCO\n" * 1000)[:-20])
    with pytest.raises(InputError, match="error reading"):
        list(open_input(str(p)).rows())


# ------------------------------------------------------------------ errors at open


def test_missing_file_directory_and_bad_format(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="input file not found"):
        open_input(str(tmp_path / "nope.smi"))
    with pytest.raises(InputError, match="directory"):
        open_input(str(tmp_path))
    with pytest.raises(InputError, match="unknown input format"):
        open_input(str(_write(tmp_path, "a.smi", b"C\n")), input_format="sdf")


# ------------------------------------------------------------------ csv / tsv


def test_csv_autodetect_columns(tmp_path: Path) -> None:
    data = b'Compound_ID,x,Canonical_SMILES\nm1,1,CCO\nm2,2,"C(=O)O"\n'
    src = open_input(str(_write(tmp_path, "in.csv", data)))
    assert (src.smiles_column, src.id_column) == ("Canonical_SMILES", "Compound_ID")
    assert [(r.row_idx, r.id, r.smiles) for r in src.rows()] == [
        (0, "m1", "CCO"),
        (1, "m2", "C(=O)O"),
    ]


def test_csv_exact_smiles_preferred_and_no_id(tmp_path: Path) -> None:
    data = b"input_smiles,smiles\nX,CCO\n"
    assert _read(_write(tmp_path, "in.csv", data)) == [(0, "0", "CCO")]


def test_tsv_explicit_columns_short_rows_blank_lines(tmp_path: Path) -> None:
    data = b"a\tb\tmol_struct\r\nk1\t\tCCO\r\n\r\nk3\r\n"
    rows = _read(
        _write(tmp_path, "in.tsv", data), smiles_column="mol_struct", id_column="a"
    )
    assert rows == [(0, "k1", "CCO"), (1, "1", ""), (2, "k3", "")]


def test_csv_missing_columns(tmp_path: Path) -> None:
    p = _write(tmp_path, "in.csv", b"a,b,c\n1,2,3\n")
    with pytest.raises(InputError, match="columns are: a, b, c.*--smiles-column"):
        open_input(str(p))
    with pytest.raises(
        InputError, match="column 'X' not in input; columns are: a, b, c"
    ):
        open_input(str(p), smiles_column="X")
    q = _write(tmp_path, "ok.csv", b"smiles,b\nC,2\n")
    with pytest.raises(InputError, match="column 'nope' not in input"):
        open_input(str(q), id_column="nope")


def test_csv_empty_and_header_only(tmp_path: Path) -> None:
    assert _read(_write(tmp_path, "e.csv", b"")) == []
    assert _read(_write(tmp_path, "h.csv", b"smiles,id\n")) == []


def test_csv_huge_field_and_gzip(tmp_path: Path) -> None:
    big = "C" * (10 * 1024 * 1024)
    raw = gzip.compress(f"id,smiles\nbig,{big}\n".encode())
    src = open_input(str(_write(tmp_path, "in.csv.gz", raw)))
    rows = list(src.rows())
    assert len(rows) == 1 and rows[0].id == "big" and len(rows[0].smiles) == len(big)
    assert src.sha256() == hashlib.sha256(raw).hexdigest()


# ------------------------------------------------------------------ parquet input


def _parquet_input(tmp_path: Path) -> Path:
    p = tmp_path / "in.parquet"
    table = pa.table(
        {"ID": [10, 11, None], "SMILES": ["CCO", None, " CN "], "z": [1, 2, 3]}
    )
    pq.write_table(table, p, row_group_size=2)
    return p


def test_parquet_input(tmp_path: Path) -> None:
    p = _parquet_input(tmp_path)
    src = open_input(str(p))
    assert [(r.row_idx, r.id, r.smiles) for r in src.rows()] == [
        (0, "10", "CCO"),
        (1, "11", ""),
        (2, "2", "CN"),
    ]
    assert src.sha256() == hashlib.sha256(p.read_bytes()).hexdigest()
    with pytest.raises(InputError, match="column 'q' not in input"):
        open_input(str(p), smiles_column="q")
    with pytest.raises(InputError, match="cannot read"):
        open_input(str(_write(tmp_path, "bad.parquet", b"not parquet at all")))


def test_parquet_gz_input(tmp_path: Path) -> None:
    raw = gzip.compress(_parquet_input(tmp_path).read_bytes())
    src = open_input(str(_write(tmp_path, "in.parquet.gz", raw)), id_column="z")
    assert [r.id for r in src.rows()] == ["1", "2", "3"]
    assert src.sha256() == hashlib.sha256(raw).hexdigest()


# ------------------------------------------------------------------ stdin


class _FakeStdin:
    def __init__(self, data: bytes) -> None:
        self.buffer = io.BytesIO(data)


@pytest.mark.parametrize("compress", [False, True])
def test_stdin(monkeypatch: pytest.MonkeyPatch, compress: bool) -> None:
    data = b"CCO a\n\nCCN\n\n"
    raw = gzip.compress(data) if compress else data
    monkeypatch.setattr(sys, "stdin", _FakeStdin(raw))
    src = open_input("-")
    assert src.name == "<stdin>"
    assert [(r.row_idx, r.id, r.smiles) for r in src.rows()] == [
        (0, "a", "CCO"),
        (1, "1", ""),
        (2, "2", "CCN"),
    ]
    assert src.sha256() == hashlib.sha256(raw).hexdigest()


def test_stdin_explicit_csv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", _FakeStdin(b"name,smiles\nn1,CCO\n"))
    assert _read("-", input_format="csv") == [(0, "n1", "CCO")]


@pytest.mark.parametrize("data, expected", [
    (b"id,smiles,y\nm1,CCO,1\nm2,CN,0\n", [(0, "m1", "CCO"), (1, "m2", "CN")]),
    (b"smiles\tname\nCCO\te\n", [(0, "e", "CCO")]),
    (b"# made by hand\nCCO,x a\n", [(0, "a", "CCO,x")]),  # comments mean .smi, whatever follows
])
def test_stdin_format_sniffed_from_its_first_line(monkeypatch: pytest.MonkeyPatch, data: bytes,
                                                  expected: list[tuple[int, str, str]]) -> None:
    for raw in (data, gzip.compress(data)):
        monkeypatch.setattr(sys, "stdin", _FakeStdin(raw))
        assert _read("-") == expected


def test_stdin_parquet_spooled_and_checked_at_open(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    raw = _parquet_input(tmp_path).read_bytes()
    for data in (raw, gzip.compress(raw)):
        monkeypatch.setattr(sys, "stdin", _FakeStdin(data))
        src = open_input("-")
        assert src.sha256() == hashlib.sha256(data).hexdigest()  # read in full before any work
        assert [r.smiles for r in src.rows()] == ["CCO", "", "CN"]
    monkeypatch.setattr(sys, "stdin", _FakeStdin(raw))
    with pytest.raises(InputError, match="column 'q' not in input"):
        open_input("-", smiles_column="q")


def test_stdin_binary_and_bad_column_refused_at_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", _FakeStdin(b"CCO\x00\x01\x02"))
    with pytest.raises(InputError, match="binary"):
        open_input("-")
    monkeypatch.setattr(sys, "stdin", _FakeStdin(b"id,smiles\nm,CCO\n"))
    with pytest.raises(InputError, match="column 'nope' not in input"):
        open_input("-", smiles_column="nope")


def test_named_pipe_is_read_once_as_a_stream(tmp_path: Path) -> None:
    """A FIFO (also /dev/stdin or a shell's <(...)) holds its bytes once: sniffing, hashing or
    counting rows by reopening it would leave the reader nothing (0 rows, exit 0)."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    data = b"id,smiles\nm1,CCO\nm2,CN\n"
    writer = threading.Thread(target=fifo.write_bytes, args=(data,))
    writer.start()
    src = open_input(str(fifo))
    assert src.streamed and src.format == "csv"
    assert [(r.id, r.smiles) for r in src.rows()] == [("m1", "CCO"), ("m2", "CN")]
    writer.join()
    assert src.sha256() == hashlib.sha256(data).hexdigest()


def test_column_options_refused_for_smi(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--smiles-column and --id-column"):
        open_input(str(_write(tmp_path, "in.smi", b"CCO e\n")), smiles_column="smiles")


def test_table_behind_an_unknown_extension(tmp_path: Path) -> None:
    p = _write(tmp_path, "in.txt", b"name,smiles\ne,CCO\n")
    assert _read(p) == [(0, "e", "CCO")]
    assert _read(_write(tmp_path, "in2.txt", b"a;b\nCCO e\n")) == [(0, "0", "a;b"), (1, "e", "CCO")]  # no header: .smi


@pytest.mark.parametrize("gz", [False, True])
def test_parquet_smiles_column_must_be_text(tmp_path: Path, gz: bool) -> None:
    p = tmp_path / "ints.parquet"
    pq.write_table(pa.table({"smiles": [1, 2, 3]}), p)
    if gz:
        p = _write(tmp_path, "ints.parquet.gz", gzip.compress(p.read_bytes()))
    with pytest.raises(InputError, match="holds int64, not text"):
        open_input(str(p))
    with pytest.raises(InputError, match="column 'nope' not in input"):  # gzipped too: at open, not mid-run
        open_input(str(p), smiles_column="nope")


# ------------------------------------------------------------------ output


def _chunk(
    start: int, n: int, dims: dict[str, int], invalid: set[int]
) -> dict[str, object]:
    valid = [start + i not in invalid for i in range(n)]
    rows: dict[str, object] = {
        "row_idx": list(range(start, start + n)),
        "id": [f"m{start + i}" for i in range(n)],
        "smiles": ["C" * (i + 1) for i in range(n)],
        "canonical_smiles": [
            ("C" * (i + 1)) if v else None for i, v in enumerate(valid)
        ],
        "valid": valid,
        "error": [None if v else "parse error" for v in valid],
    }
    for name, d in dims.items():
        rows[name] = np.arange(n * d, dtype=np.float32).reshape(n, d) + start * 1000
    return rows


def test_schema_list_and_wide() -> None:
    s = embedding_schema({"a": 4, "b": 2})
    assert s.names == [
        "row_idx",
        "id",
        "smiles",
        "canonical_smiles",
        "valid",
        "error",
        "a",
        "b",
    ]
    assert s.field("a").type == pa.list_(pa.float32(), 4)
    w = embedding_schema({"e": 3, "big": 1001}, layout="wide")
    assert w.names[6:9] == ["e_000", "e_001", "e_002"]
    assert w.names[9] == "big_0000" and w.names[-1] == "big_1000"
    assert embedding_schema({"x": 1000}, layout="wide").names[-1] == "x_999"
    with pytest.raises(ValueError):
        embedding_schema({"id": 2}, layout="list")


def test_sink_round_trip_list(tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    dims = {"emb": 3}
    with ParquetSink(out, dims, {"model": "m", "version": 1}, row_group_size=4) as sink:
        sink.write(_chunk(0, 3, dims, invalid={1}))
        sink.write(_chunk(3, 3, dims, invalid=set()))
        sink.close(extra_metadata={"n_rows": 6, "input_sha256": "abc", "version": 2})
    t = pq.read_table(out)
    assert t.num_rows == 6 and t.column("row_idx").to_pylist() == list(range(6))
    emb = t.column("emb").combine_chunks()
    assert emb.type == pa.list_(pa.float32(), 3)
    assert emb.null_count == 1 and emb[1].as_py() is None
    assert len(emb.values) == 6 * 3  # null slot still occupies its D values
    assert emb[2].as_py() == [6.0, 7.0, 8.0] and emb[3].as_py() == [
        3000.0,
        3001.0,
        3002.0,
    ]
    assert (
        t.column("canonical_smiles")[1].as_py() is None
        and t.column("error")[1].as_py() == "parse error"
    )
    assert t.column("valid").to_pylist() == [True, False, True, True, True, True]
    assert [pq.ParquetFile(out).metadata.row_group(i).num_rows for i in range(2)] == [
        4,
        2,
    ]
    want = {"model": "m", "version": 2, "n_rows": 6, "input_sha256": "abc"}
    assert json.loads(pq.read_schema(out).metadata[b"hsafeat"]) == want
    assert json.loads(pq.read_metadata(out).metadata[b"hsafeat"]) == want
    assert json.loads(t.schema.metadata[b"hsafeat"]) == want
    assert read_hsafeat_metadata(out) == want
    assert os.listdir(tmp_path) == ["out.parquet"]  # no temp file left behind


def test_sink_wide_layout_nulls(tmp_path: Path) -> None:
    out = tmp_path / "wide.parquet"
    dims = {"a": 2, "b": 1}
    with ParquetSink(out, dims, {}, layout="wide") as sink:
        sink.write(_chunk(0, 3, dims, invalid={0}))
    t = pq.read_table(out)
    assert t.column_names[6:] == ["a_000", "a_001", "b_000"]
    assert t.column("a_001").to_pylist() == [None, 3.0, 5.0]
    assert t.column("b_000").to_pylist() == [None, 1.0, 2.0]
    assert t.schema.field("a_000").type == pa.float32()


def test_sink_abort_and_exception_leave_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    sink = ParquetSink(out, {"e": 2}, {}, row_group_size=1)
    sink.write(_chunk(0, 2, {"e": 2}, set()))
    assert os.listdir(tmp_path) == [".out.parquet.parts"] and not out.exists()
    sink.abort()
    assert os.listdir(tmp_path) == []
    with pytest.raises(KeyError), ParquetSink(out, {"e": 2}, {}) as s2:
        s2.write(_chunk(0, 2, {"e": 2}, set()))
        raise KeyError("boom")
    assert os.listdir(tmp_path) == []


def test_sink_existing_destination_replaced_only_on_close(tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    out.write_bytes(b"old")
    sink = ParquetSink(out, {"e": 1}, {})
    sink.write(_chunk(0, 1, {"e": 1}, set()))
    assert out.read_bytes() == b"old"
    sink.close()
    assert pq.read_table(out).num_rows == 1


def test_sink_shape_mismatch(tmp_path: Path) -> None:
    with (
        ParquetSink(tmp_path / "o.parquet", {"e": 4}, {}) as sink,
        pytest.raises(ValueError, match="shape"),
    ):
        sink.write(_chunk(0, 2, {"e": 3}, set()))


@pytest.mark.parametrize("when", ["row group", "merge"])
def test_sink_oserror_becomes_output_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str) -> None:
    out = tmp_path / "out.parquet"
    sink = ParquetSink(out, {"e": 2}, {}, row_group_size=1)

    def full(*a: object, **k: object) -> None:
        raise OSError(28, "No space left on device")

    if when == "row group":  # parts are Arrow IPC files
        monkeypatch.setattr(pa.ipc, "new_file", full)
        with pytest.raises(OutputError, match="No space left on device"):
            sink.write(_chunk(0, 2, {"e": 2}, set()))
    else:
        sink.write(_chunk(0, 2, {"e": 2}, set()))
        monkeypatch.setattr(pq.ParquetWriter, "write_table", full)
        with pytest.raises(OutputError, match="No space left on device"):
            sink.close()
    assert os.listdir(tmp_path) == []


def test_sink_resume_continues_after_recorded_parts(tmp_path: Path) -> None:
    out, dims, key = tmp_path / "out.parquet", {"e": 3}, {"input": "x"}
    with ParquetSink(out, dims, {"created_at": "first"}, row_group_size=4, run_key=key) as whole:
        for start in range(0, 10, 2):
            whole.write(_chunk(start, 2, dims, invalid={start + 1} if start == 4 else set()))
    expected = pq.read_table(out)
    out.unlink()

    first = ParquetSink(out, dims, {"created_at": "first"}, row_group_size=4, run_key=key)
    for start in range(0, 6, 2):
        first.write(_chunk(start, 2, dims, invalid={start + 1} if start == 4 else set()))
    first.suspend()  # as if killed: rows 4-5 were buffered, rows 0-3 are a recorded part
    assert not out.exists()
    with pytest.raises(OutputError, match="another input"):
        ParquetSink(out, dims, {}, row_group_size=4, run_key={"input": "y"}, resume=True)
    again = ParquetSink(out, dims, {"created_at": "second"}, row_group_size=4, run_key=key, resume=True)
    assert (again.rows_done, again.valid_done) == (4, 4)
    for start in range(4, 10, 2):
        again.write(_chunk(start, 2, dims, invalid={start + 1} if start == 4 else set()))
    again.close()
    assert pq.read_table(out).equals(expected)
    assert read_hsafeat_metadata(out)["created_at"] == "first"
    assert os.listdir(tmp_path) == ["out.parquet"]


def test_sink_refuses_a_live_concurrent_run(tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    ParquetSink(out, {"e": 1}, {})
    (tmp_path / ".out.parquet.parts" / "lock").write_text("1")  # pid 1 is alive
    with pytest.raises(OutputError, match="pid 1"):
        ParquetSink(out, {"e": 1}, {})


# Opens a sink on each path read from stdin at the given moment, writes 12 rows, holds the sink
# long enough that the other process surely tries meanwhile, then closes it.
_RACER = """
import sys, time
import numpy as np
from hsafeat.output import OutputError, ParquetSink
print("ready", flush=True)
for line in sys.stdin:
    path, at = line.split()
    while time.time() < float(at):
        pass
    try:
        with ParquetSink(path, {"e": 2}, {}, row_group_size=4, run_key={"input": "x"}) as sink:
            for lo in range(0, 12, 3):
                sink.write({"row_idx": range(lo, lo + 3), "id": ["m"] * 3, "smiles": ["C"] * 3,
                            "canonical_smiles": ["C"] * 3, "valid": [True] * 3, "error": [None] * 3,
                            "e": np.zeros((3, 2), np.float32)})
            time.sleep(0.2)
        print("ok", flush=True)
    except OutputError as e:
        print("refused", e, flush=True)
"""


def test_sink_two_runs_started_at_the_same_moment(tmp_path: Path) -> None:
    """Of two runs opening the same output at the same moment exactly one proceeds; the other is
    refused naming it, and touches none of its files (the lock is taken atomically)."""
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])}
    racers = [subprocess.Popen([sys.executable, "-c", _RACER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env) for _ in range(2)]
    try:
        assert [r.stdout.readline() for r in racers] == ["ready\n"] * 2, [r.communicate() for r in racers]
        for k in range(5):
            out = tmp_path / f"race{k}.parquet"
            at = time.time() + 0.05
            for r in racers:
                r.stdin.write(f"{out} {at}\n")
                r.stdin.flush()
            said = [r.stdout.readline().strip() for r in racers]
            assert sorted(s.split()[0] for s in said if s) == ["ok", "refused"], (k, said)
            winner = racers[["ok", "refused"].index(said[0].split()[0])]
            refusal = next(s for s in said if s.startswith("refused"))
            assert re.fullmatch(rf"refused another hsafeat run (\(pid {winner.pid}\) is writing|is starting to "
                                rf"write) {re.escape(str(out))}", refusal), refusal
            assert pq.read_table(out).column("row_idx").to_pylist() == list(range(12))
        assert sorted(os.listdir(tmp_path)) == [f"race{k}.parquet" for k in range(5)]
    finally:
        for r in racers:
            r.communicate(timeout=30)


def test_sink_takes_over_a_killed_runs_lock(tmp_path: Path) -> None:
    """A lock left by a run that died (its pid gone) is taken over; its parts resume."""
    out, dims, key = tmp_path / "out.parquet", {"e": 2}, {"input": "x"}
    first = ParquetSink(out, dims, {}, row_group_size=2, run_key=key)
    first.write(_chunk(0, 4, dims, set()))
    first._unlock()  # as if killed: no suspend(), the lock file stays
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / ".out.parquet.parts" / "lock").write_text(dead.stdout.strip())
    again = ParquetSink(out, dims, {}, row_group_size=2, run_key=key, resume=True)
    assert again.rows_done == 4
    again.write(_chunk(4, 2, dims, set()))
    again.close()
    assert pq.read_table(out).column("row_idx").to_pylist() == list(range(6))
    assert os.listdir(tmp_path) == ["out.parquet"]


def test_check_writable(tmp_path: Path) -> None:
    check_writable(tmp_path / "ok.parquet")
    with pytest.raises(OutputError, match="does not exist"):
        check_writable(tmp_path / "missing" / "o.parquet")
    with pytest.raises(OutputError, match="is a directory"):
        check_writable(tmp_path)
    with pytest.raises(OutputError, match="does not exist"):
        ParquetSink(tmp_path / "missing" / "o.parquet", {"e": 1}, {})


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write anywhere"
)
def test_check_writable_readonly_dir(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="not writable"):
            check_writable(ro / "o.parquet")
    finally:
        ro.chmod(0o700)


def test_sink_bytes_do_not_depend_on_how_rows_arrive(tmp_path: Path) -> None:
    """A resumed run meets other chunk boundaries than an uninterrupted one; the merged file must
    not show them (parts are written as one record batch each)."""
    dims = {"e": 256}
    n, rng = 5000, np.random.default_rng(0)
    emb = rng.standard_normal((n, 256)).astype(np.float32)

    def write(out: Path, chunk: int) -> bytes:
        with ParquetSink(out, dims, {}, row_group_size=2000) as sink:
            for lo in range(0, n, chunk):
                rows = _chunk(lo, min(chunk, n - lo), dims, {7, 4321})
                rows["smiles"] = rows["canonical_smiles"] = [f"C{i}" for i in rows["row_idx"]]  # type: ignore[attr-defined]
                rows["e"] = emb[lo:lo + chunk]
                sink.write(rows)
        return out.read_bytes()

    assert write(tmp_path / "a.parquet", 1024) == write(tmp_path / "b.parquet", 333)
