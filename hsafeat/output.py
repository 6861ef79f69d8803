"""Parquet output of embeddings: the schema, and a sink that never leaves a half-written file
at its destination and can resume an interrupted run.

How the sink works: rows are buffered into row groups; every complete row group is written as an
uncompressed Arrow IPC file of its own in a hidden work directory beside the destination
(`.NAME.parts/`) and recorded in its manifest. Parts in Arrow's own format cost a copy to write
and a memory map to read back, so each row group is Parquet-encoded and compressed only once, by
the merge (docs/DESIGN.md, "Output"). close() merges the parts into a temporary file,
fsyncs it and renames it onto the destination, then removes the work directory. A run that is
killed leaves the work directory and nothing at the destination; the same run started again with
resume=True (same run key: input, weights, options) continues after the last recorded part, and
the merged file is the one an uninterrupted run writes.

One run at a time: a run holds a POSIX lock on the work directory's `lock` file (which also holds
its pid, for the message) from its start to its end. Taking it is atomic, so of two runs started
at the same moment exactly one gets it and the other is refused without touching anything, and
the kernel drops it when its process dies, so a killed run's parts are free to resume."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

try:
    import fcntl
except ImportError:  # no POSIX locks (Windows): the pid check alone
    fcntl = None  # type: ignore[assignment]

from hsafeat.arrow_build import bool_array, fixed_size_list_array, float32_array, int64_array, null_mask, string_array

METADATA_KEY = b"hsafeat"
MANIFEST_VERSION = 2  # 2: parts are Arrow IPC files (1: Parquet)
PART_SUFFIX = ".arrow"


class OutputError(Exception):
    """The output cannot be written (bad directory, disk full...). Message is one clear line."""


# the metadata key that names an embedding's dimensions: its wide columns are NAME_<label>
DIMENSION_LABELS = {"desc_pred": "desc_pred_names"}


def wide_column_names(name: str, d: int, labels: Sequence[str] | None = None) -> list[str]:
    """An embedding's columns in the wide layout: NAME_<label> (desc_pred_MolWt) where its
    dimensions are named, else NAME_000, NAME_001... (at least 3 digits)."""
    if labels is not None:
        if len(labels) != d or len(set(labels)) != d:
            raise ValueError(f"embedding '{name}' has {d} dimensions but {len(labels)} labels ({len(set(labels))} distinct)")
        return [f"{name}_{label}" for label in labels]
    width = max(3, len(str(d - 1)))
    return [f"{name}_{i:0{width}d}" for i in range(d)]


def embedding_schema(dims: dict[str, int], layout: str = "list",
                     labels: dict[str, Sequence[str]] | None = None) -> pa.Schema:
    """Output schema: base columns, then each embedding as fixed_size_list or D float32 columns
    (named by `labels` where an embedding has them, see wide_column_names)."""
    if layout not in ("list", "wide"):
        raise ValueError(f"unknown layout '{layout}'; expected 'list' or 'wide'")
    fields = [
        pa.field("row_idx", pa.int64(), nullable=False),
        pa.field("id", pa.string()),
        pa.field("smiles", pa.string()),
        pa.field("canonical_smiles", pa.string()),
        pa.field("valid", pa.bool_(), nullable=False),
        pa.field("error", pa.string()),
    ]
    for name, d in dims.items():
        if d < 1:
            raise ValueError(f"embedding '{name}' must have dimension >= 1, got {d}")
        if layout == "list":
            fields.append(pa.field(name, pa.list_(pa.float32(), d)))
        else:
            fields.extend(pa.field(c, pa.float32()) for c in wide_column_names(name, d, (labels or {}).get(name)))
    names = [f.name for f in fields]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate output column names in {names}")
    return pa.schema(fields)


def check_writable(path: str | Path) -> None:
    """Raise OutputError unless `path` could be created/replaced by this process."""
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"output path is a directory: {p}")
    parent = p.parent
    if not parent.exists():
        raise OutputError(f"output directory does not exist: {parent}")
    if not parent.is_dir():
        raise OutputError(f"output directory is not a directory: {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"output directory is not writable: {parent}")


def read_hsafeat_metadata(path: str | Path) -> dict[str, Any]:
    """The hsafeat JSON metadata of a file written by ParquetSink."""
    return json.loads(pq.read_schema(path).metadata[METADATA_KEY])


def _schema_with_meta(schema: pa.Schema, meta: dict[str, Any]) -> pa.Schema:
    return schema.with_metadata({METADATA_KEY: json.dumps(meta, default=str).encode()})


def work_dir(path: str | Path) -> Path:
    """Where the parts of an unfinished run writing `path` are kept."""
    p = Path(path)
    return p.parent / f".{p.name}.parts"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(fd: int) -> int | None:
    """The pid in an open lock file (None: empty, being written, or not a pid). Read through
    `fd`: opening the file again and closing it would drop this process's POSIX lock on it."""
    try:
        return int(os.pread(fd, 32, 0))
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, default=str))
    os.replace(tmp, path)


class ParquetSink:
    """Streams chunks into `path` in resumable row groups (see the module docstring).

    run_key identifies the run for resuming (None: not resumable); after construction,
    rows_done / valid_done say how many rows a resumed run already has."""

    def __init__(
        self,
        path: str | Path,
        dims: dict[str, int],
        metadata: dict[str, Any],
        layout: str = "list",
        row_group_size: int = 8192,
        run_key: dict[str, Any] | None = None,
        resume: bool = False,
        schema: pa.Schema | None = None,
    ) -> None:
        check_writable(path)
        self.path = Path(path)
        self.dims, self.layout = dict(dims), layout
        self.row_group_size = max(1, row_group_size)
        self.work = work_dir(self.path)
        self._key = {"manifest": MANIFEST_VERSION, "row_group_size": self.row_group_size, "layout": layout,
                     "dims": self.dims, "run": run_key}
        self._meta = dict(metadata)
        self._buf: list[pa.RecordBatch] = []
        self._buffered = 0
        self._parts = 0
        self.rows_done = self.valid_done = 0
        self._done = False
        self._codec = "zstd" if pa.Codec.is_available("zstd") else "snappy"
        self._lock_fd: int | None = None
        self._lock()  # before anything in the work directory is touched; refused: nothing touched
        try:
            self._start(resume and run_key is not None)
            labels = {name: self._meta[key] for name, key in DIMENSION_LABELS.items() if key in self._meta}
            if schema is None:
                schema = embedding_schema(dims, layout, labels)
            self._schema = _schema_with_meta(schema, self._meta)
        except OSError as e:
            self._fail(e)
        except BaseException:
            self._unlock()  # e.g. cannot resume: the parts stay for the run they belong to
            raise

    # -------------------------------------------------------------------------- work directory

    def _lock(self) -> None:
        """Take the work directory's lock for this run, or raise OutputError (naming the run
        that holds it) having changed nothing: a losing run must never touch the winner's files."""
        lock = self.work / "lock"
        try:
            for _ in range(100):
                self.work.mkdir(exist_ok=True)
                try:
                    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
                except FileNotFoundError:  # a run that just finished removed the directory
                    continue
                try:
                    if not self._lock_file(fd, lock):
                        continue
                    # a lock file whose pid is alive refuses even unlocked, as it always has
                    self._refuse_live_holder(fd)
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, str(os.getpid()).encode(), 0)
                    self._lock_fd, fd = fd, -1
                    return
                finally:
                    if fd >= 0:
                        os.close(fd)
            raise OutputError(f"another hsafeat run is starting to write {self.path}")
        except OSError as e:
            raise OutputError(f"cannot write {self.path}: {e.strerror or e}") from e

    def _lock_file(self, fd: int, lock: Path) -> bool:
        """Lock the open lock file; False if it is no longer the work directory's lock file (a
        run that finished removed it meanwhile: try again)."""
        if fcntl is not None:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EACCES, errno.EAGAIN):
                    if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                        return True  # a filesystem without locks: the pid check alone
                    raise
                for _ in range(20):  # its pid, which a run that has just locked is writing now
                    self._refuse_live_holder(fd)
                    time.sleep(0.005)
                raise OutputError(f"another hsafeat run is starting to write {self.path}") from None
        try:
            return os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            return False

    def _refuse_live_holder(self, fd: int) -> None:
        """OutputError naming the run whose pid the lock file holds, if that run is alive."""
        holder = _read_pid(fd)
        if holder is not None and holder != os.getpid() and _pid_alive(holder):
            raise OutputError(f"another hsafeat run (pid {holder}) is writing {self.path}")

    def _unlock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)

    def _start(self, resume: bool) -> None:
        """Resume after the recorded parts, or start afresh (the lock is held)."""
        manifest = self._manifest() if resume else None
        if manifest is not None:
            if manifest.get("key") != self._key:
                raise OutputError(
                    f"cannot resume {self.path}: the unfinished run used another input, weights or options "
                    f"(run without --resume to start again)")
            self._parts, self.rows_done, self.valid_done = manifest["parts"], manifest["rows"], manifest["valid"]
            self._meta = manifest["metadata"]  # the first start's metadata (its created_at)
            for stray in self.work.glob("part-*"):  # written after the last manifest update
                if int(stray.name[5:11]) >= self._parts or not stray.name.endswith(PART_SUFFIX):
                    stray.unlink()
        else:
            with os.scandir(self.work) as entries:  # all but the lock this run holds
                for entry in entries:
                    if entry.name == "lock":
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:
                        Path(entry.path).unlink(missing_ok=True)
            self._save_manifest()

    def _manifest(self) -> dict | None:
        try:
            return json.loads((self.work / "manifest.json").read_text())
        except (OSError, ValueError):
            return None

    def _save_manifest(self) -> None:
        _write_json(self.work / "manifest.json", {
            "key": self._key, "parts": self._parts, "rows": self.rows_done, "valid": self.valid_done,
            "metadata": self._meta,
        })

    def _part(self, k: int) -> Path:
        return self.work / f"part-{k:06d}{PART_SUFFIX}"

    def _fail(self, e: OSError) -> None:
        self.abort()
        raise OutputError(f"cannot write {self.path}: {e.strerror or e}") from e

    # ----------------------------------------------------------------------------------- rows

    def write(self, rows: dict[str, Any]) -> None:
        """Append one chunk; embeddings of rows with valid=False are written as nulls."""
        if self._done:
            raise RuntimeError("ParquetSink is closed")
        valid = np.asarray(rows["valid"], dtype=bool)
        n = len(valid)
        invalid = ~valid
        mask = null_mask(invalid)  # one bitmap for every embedding column
        arrays: list[pa.Array] = [  # from buffers: pa.array() would import pandas (arrow_build.py)
            int64_array(np.asarray(rows["row_idx"], dtype=np.int64)),
            string_array(rows["id"]),
            string_array(rows["smiles"]),
            string_array(rows["canonical_smiles"]),
            bool_array(valid),
            string_array(rows["error"]),
        ]
        for name, d in self.dims.items():
            emb = np.ascontiguousarray(rows[name], dtype=np.float32)
            if emb.shape != (n, d):
                raise ValueError(f"embedding '{name}' has shape {emb.shape}, expected {(n, d)}")
            if self.layout == "list":
                arrays.append(fixed_size_list_array(emb, mask))
            else:
                cols = np.ascontiguousarray(emb.T)  # one transpose, then contiguous column slices
                arrays.extend(float32_array(cols[i], mask) for i in range(d))
        self._buf.append(pa.RecordBatch.from_arrays(arrays, schema=self._schema))
        self._buffered += n
        if self._buffered >= self.row_group_size:
            self._flush(final=False)

    def write_table(self, table: pa.Table) -> None:
        """Append rows already in the sink's schema (a sink made with `schema=`, e.g. gate files)."""
        if self._done:
            raise RuntimeError("ParquetSink is closed")
        self._buf.extend(table.cast(self._schema).to_batches())
        self._buffered += len(table)
        if self._buffered >= self.row_group_size:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        """Write every complete row group (and the remainder if final) as a recorded part."""
        if not self._buf:
            return
        table = pa.Table.from_batches(self._buf, self._schema)
        start = 0
        try:
            while len(table) - start >= self.row_group_size or (final and start < len(table)):
                group = table.slice(start, self.row_group_size)
                tmp = self._part(self._parts).with_suffix(".tmp")
                with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, self._schema) as part:
                    # one record batch: the merge's page layout then never depends on how the
                    # rows arrived in chunks (the same bytes as when parts were Parquet files)
                    part.write_table(group.combine_chunks())
                os.replace(tmp, self._part(self._parts))
                self._parts += 1
                self.rows_done += len(group)
                self.valid_done += sum(chunk.true_count for chunk in group.column("valid").chunks)  # to_numpy() imports pandas
                self._save_manifest()
                start += len(group)
        except OSError as e:
            self._fail(e)
        self._buf = table.slice(start).to_batches()
        self._buffered = len(table) - start

    # ------------------------------------------------------------------------------ endings

    def close(self, extra_metadata: dict[str, Any] | None = None) -> None:
        """Write the last rows, merge the parts with the final metadata into the destination
        (temporary file, fsync, atomic rename) and remove the work directory."""
        if self._done:
            return
        final = _schema_with_meta(self._schema, {**self._meta, **(extra_metadata or {})})
        tmp = self.work / "merged.tmp"
        try:
            self._flush(final=True)
            with pq.ParquetWriter(tmp, final, compression=self._codec, use_dictionary=["error"]) as writer:
                for k in range(self._parts):
                    with pa.memory_map(str(self._part(k))) as source:
                        writer.write_table(pa.ipc.open_file(source).read_all(), row_group_size=self.row_group_size)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as e:
            self._fail(e)
        shutil.rmtree(self.work, ignore_errors=True)
        self._unlock()  # after the removal: a run waiting for the lock finds no stale parts
        self._done = True

    def suspend(self) -> None:
        """Stop, keeping the recorded parts for a resumed run (interrupted runs)."""
        self._done = True
        with contextlib.suppress(OSError):
            (self.work / "lock").unlink()
        self._unlock()

    def abort(self) -> None:
        """Discard everything written; nothing appears at the destination."""
        self._done = True
        shutil.rmtree(self.work, ignore_errors=True)
        self._unlock()

    def __del__(self) -> None:  # a sink dropped unfinished is a run that stopped: free its lock
        with contextlib.suppress(AttributeError, OSError):
            self._unlock()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        elif issubclass(exc_type, KeyboardInterrupt) and self._key["run"] is not None:
            self.suspend()  # resumable: keep the finished row groups
        else:
            self.abort()
