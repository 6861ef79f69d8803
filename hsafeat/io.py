"""Streaming molecule input (.smi/.csv/.tsv/.parquet, optionally gzipped, or stdin).

Regular files are opened by name as often as needed (column check, row estimate, resume hash).
Stdin and other streams (a FIFO, /dev/stdin, a shell's <(...)) hold their bytes once: they are
opened once, their format is sniffed from the first bytes, which are then read again as the
start of the stream, and they are hashed as they pass. The output side lives in hsafeat.output."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
import shutil
import stat
import sys
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import islice
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

FORMATS = ("smi", "csv", "tsv", "parquet")
_GZIP_MAGIC = b"\x1f\x8b"
_PARQUET_MAGIC = b"PAR1"
_SNIFF_BYTES = 1 << 16  # what is read of a stream before its format is decided
_EXT_FORMATS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}
_ID_NAMES = ("id", "name", "mol_id", "compound_id")


class InputError(Exception):
    """A problem with the input as a whole (missing file, bad column...). Message is one clear line."""


@dataclass(frozen=True, slots=True)
class InputRow:
    """One input molecule; id falls back to str(row_idx)."""

    row_idx: int  # 0-based among data rows: header and comments excluded, blank lines included
    id: str
    smiles: str


class _HashingReader(io.RawIOBase):
    """Raw reader that hashes bytes as they are consumed, so stdin can be hashed in one pass."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw, self.hash = raw, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        data = self._raw.read(len(buf))
        self.hash.update(data)
        buf[: len(data)] = data
        return len(data)


class _Prefixed(io.RawIOBase):
    """A stream whose first bytes were already read to sniff its format: those bytes, then the rest."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head, self._rest = memoryview(head), rest

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        if self._head:
            n = min(len(buf), len(self._head))
            buf[:n], self._head = self._head[:n], self._head[n:]
            return n
        data = self._rest.read(len(buf))
        buf[: len(data)] = data
        return len(data)


def is_stream(path: str) -> bool:
    """Whether an input can be read only once, front to back: stdin ("-"), a named pipe,
    /dev/stdin or a shell's <(...). Such inputs are sniffed from their first bytes, never
    opened twice (a second pass would find them empty)."""
    if path == "-":
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _pick_column(
    names: list[str], wanted: str | None, kind: str, auto: list[str]
) -> str | None:
    """Resolve an explicit column name (exact, then case-insensitive) or the first auto match."""
    if wanted is not None:
        if wanted in names:
            return wanted
        folded = [n for n in names if n.lower() == wanted.lower()]
        if len(folded) == 1:
            return folded[0]
        raise InputError(
            f"{kind} column '{wanted}' not in input; columns are: {', '.join(names)}"
        )
    return auto[0] if auto else None


def _smiles_like(names: list[str]) -> list[str]:
    """Columns that name SMILES by themselves; an exact "smiles" beats one that merely contains it
    (e.g. "smiles" vs "input_smiles")."""
    low = [n.strip().lower() for n in names]
    return [n for n, lo in zip(names, low) if lo == "smiles"] + [
        n for n, lo in zip(names, low) if "smiles" in lo or lo == "mol"
    ]


def _resolve_columns(
    names: list[str], smiles_column: str | None, id_column: str | None
) -> tuple[str, str | None]:
    low = [n.strip().lower() for n in names]
    smi = _pick_column(names, smiles_column, "SMILES", _smiles_like(names))
    if smi is None:
        raise InputError(
            f"no SMILES column found; columns are: {', '.join(names)} "
            "(use --smiles-column to choose one)"
        )
    ids = _pick_column(
        names, id_column, "id", [n for n, lo in zip(names, low) if lo in _ID_NAMES]
    )
    return smi, ids


def _detect_format(path: str) -> tuple[str, bool]:
    """Format from the extension (unknown: .smi) and gzip flag from extension or magic."""
    lower = path.lower()
    gz = lower.endswith(".gz")
    ext = os.path.splitext(lower[:-3] if gz else lower)[1]
    with open(path, "rb") as f:  # also catch gzip data behind a plain extension
        gz = gz or f.read(2) == _GZIP_MAGIC
    return _EXT_FORMATS.get(ext, "smi"), gz


_Item = tuple[str, str | None] | None  # (smiles, id), or None for a blank line


def _with_blank_rows(items: Iterator[_Item]) -> Iterator[InputRow]:
    """Number items; blank lines are held back so that trailing ones are dropped."""
    idx, pending = 0, 0  # a counter, not a list, keeps memory flat on long blank runs
    for item in items:
        if item is None:
            pending += 1
            continue
        for _ in range(pending):
            yield InputRow(idx, str(idx), "")
            idx += 1
        pending = 0
        yield InputRow(idx, item[1] or str(idx), item[0])
        idx += 1


def _smi_items(lines: Iterator[bytes]) -> Iterator[_Item]:
    first = True
    header_possible = True
    for raw in lines:
        if first and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        first = False
        text = raw.decode("utf-8", errors="replace").strip()
        if text.startswith("#"):
            continue
        parts = text.split(None, 1)
        if header_possible:  # only the first non-comment line may be a header
            header_possible = False
            if (
                parts
                and parts[0].lower() == "smiles"
                and (len(parts) == 1 or parts[1].lower() in ("id", "name"))
            ):
                continue
        if not parts:
            yield None
            continue
        if len(parts) == 2 and parts[1].startswith("|"):
            # CXSMILES: the |...| extension belongs to the SMILES; the id follows it
            close = parts[1].find("|", 1)
            if close > 0:
                rest = parts[1][close + 1 :].strip()
                yield f"{parts[0]} {parts[1][: close + 1]}", rest or None
                continue
        yield parts[0], parts[1].strip() if len(parts) == 2 else None


def _csv_items(reader: Iterator[list[str]], si: int, ii: int | None) -> Iterator[_Item]:
    for rec in reader:
        if not rec or (len(rec) == 1 and not rec[0].strip()):
            yield None
            continue
        smiles = rec[si].strip() if si < len(rec) else ""  # short rows stay rows
        yield smiles, (rec[ii].strip() if ii is not None and ii < len(rec) else None)


class InputSource:
    """A lazily read molecule input; rows() may be iterated once."""

    def __init__(
        self,
        path: str,
        fmt: str,
        gz: bool,
        smiles_column: str | None,
        id_column: str | None,
        stream: IO[bytes] | None = None,
    ) -> None:
        self.path, self.format, self.gzip = path, fmt, gz
        self.name = "<stdin>" if path == "-" else path
        self._want = (smiles_column, id_column)
        self.smiles_column: str | None = None
        self.id_column: str | None = None
        self._hash = hashlib.sha256()
        self._used = False
        self._stream = stream  # stdin or a pipe, already opened (open_input): readable once
        self._spooled: Any = None  # a parquet input copied to a temporary file (spool_parquet)
        if fmt in ("csv", "tsv"):
            # a 10 MB SMILES field must not crash (the default limit is 128 KiB)
            csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
        if stream is None and fmt in ("csv", "tsv", "parquet") and not (gz and fmt == "parquet"):
            self._resolve_file_columns()  # fail on a bad column before any expensive work

    @property
    def streamed(self) -> bool:
        """Whether the input can be read only once (stdin, a pipe): no resume, no second pass."""
        return self._stream is not None

    def spool_parquet(self) -> None:
        """Parquet needs random access: a gzipped or streamed one is copied to a temporary file
        now (its raw bytes hashed as they pass), so that its columns are checked before any work."""
        raw = self._stream if self._stream is not None else open(self.path, "rb")  # noqa: SIM115
        try:
            hashing = _HashingReader(raw)
            buffered = io.BufferedReader(hashing, 1 << 16)
            source = gzip.GzipFile(fileobj=buffered, mode="rb") if self.gzip else buffered
            spooled = tempfile.NamedTemporaryFile(suffix=".parquet")  # noqa: SIM115 - lives as long as the source
            shutil.copyfileobj(source, spooled, 1 << 20)
            spooled.flush()
        except (OSError, EOFError, zlib.error) as e:
            raise InputError(f"cannot read {self.name}: {getattr(e, 'strerror', None) or e}") from None
        finally:
            if raw is not self._stream:
                raw.close()
        self._hash, self._spooled = hashing.hash, spooled
        self._resolve_parquet_columns(spooled.name)

    def _resolve_file_columns(self) -> None:
        if self.format == "parquet":
            self._resolve_parquet_columns(self.path)
            return
        try:
            opener = gzip.open if self.gzip else open
            with opener(self.path, "rt", encoding="utf-8-sig", errors="replace", newline="") as f:
                names = next(csv.reader(f, delimiter=self._delim()), [])
        except (OSError, EOFError, zlib.error, csv.Error) as e:
            raise InputError(f"cannot read {self.name}: {e}") from None
        if names:
            self.smiles_column, self.id_column = _resolve_columns(names, *self._want)

    def _resolve_parquet_columns(self, path: str) -> None:
        """The SMILES and id columns of a parquet file; its SMILES column must hold text."""
        try:
            schema = pq.ParquetFile(path).schema_arrow
        except (OSError, pa.ArrowException) as e:
            raise InputError(f"cannot read {self.name}: {e}") from None
        self.smiles_column, self.id_column = _resolve_columns(schema.names, *self._want)
        kind = schema.field(self.smiles_column).type
        value = kind.value_type if pa.types.is_dictionary(kind) else kind
        if not (pa.types.is_string(value) or pa.types.is_large_string(value) or pa.types.is_null(value)
                or getattr(pa.types, "is_string_view", lambda _: False)(value)):
            raise InputError(f"SMILES column '{self.smiles_column}' of {self.name} holds {kind}, not text")

    def _delim(self) -> str:
        return "\t" if self.format == "tsv" else ","

    def sha256(self) -> str:
        """Hex SHA-256 of the raw (still compressed) input bytes; complete once rows() is exhausted."""
        return self._hash.hexdigest()

    def rows(self) -> Iterator[InputRow]:
        """Stream the rows; read errors mid-way are raised as InputError."""
        if self._used:
            raise RuntimeError(f"{self.name} has already been read")
        self._used = True
        try:
            yield from self._rows()
        except (OSError, EOFError, zlib.error, csv.Error, pa.ArrowException) as e:
            raise InputError(f"error reading {self.name}: {e}") from None

    def iter_chunks(self, size: int, skip: int = 0) -> Iterator[list[InputRow]]:
        """Chunks of up to size rows, after skipping the first skip rows (read and hashed, not
        returned: a resumed run continues where the saved rows end)."""
        if size < 1:
            raise ValueError("chunk size must be >= 1")
        it = self.rows()
        for _ in islice(it, skip):
            pass
        while chunk := list(islice(it, size)):
            yield chunk

    def _rows(self) -> Iterator[InputRow]:
        if self._spooled is not None:  # already read and hashed by spool_parquet
            with self._spooled:
                yield from self._parquet_file_rows(self._spooled.name)
            return
        with ExitStack() as stack:
            src = self._stream if self._stream is not None else stack.enter_context(open(self.path, "rb"))
            hashing = _HashingReader(src)
            self._hash = hashing.hash
            buffered = io.BufferedReader(hashing, 1 << 16)
            stream: IO[bytes] = buffered
            if self.gzip:
                stream = gzip.GzipFile(fileobj=buffered, mode="rb")
            if self.format == "parquet" and stream is buffered and self._stream is None:
                # read by random access; the drain below then hashes the file in a second pass
                yield from self._parquet_file_rows(self.path)
            elif self.format == "parquet":
                yield from self._spooled_parquet_rows(stream)
            elif self.format == "smi":
                yield from _with_blank_rows(_smi_items(iter(stream)))
            else:
                yield from self._csv_rows(stream)
            while buffered.read(1 << 20):  # hash any bytes the parser did not need
                pass

    def _csv_rows(self, stream: IO[bytes]) -> Iterator[InputRow]:
        text = io.TextIOWrapper(
            stream, encoding="utf-8-sig", errors="replace", newline=""
        )
        try:
            reader = csv.reader(text, delimiter=self._delim())
            header = next(reader, None)
            if header is None:
                return
            self.smiles_column, self.id_column = _resolve_columns(header, *self._want)
            ii = header.index(self.id_column) if self.id_column is not None else None
            yield from _with_blank_rows(
                _csv_items(reader, header.index(self.smiles_column), ii)
            )
        finally:
            text.detach()  # keep the byte stream open for the final hash drain

    def _spooled_parquet_rows(self, stream: IO[bytes]) -> Iterator[InputRow]:
        # gzip or stdin: spool to a temporary file, since parquet needs random access
        with tempfile.NamedTemporaryFile(suffix=".parquet") as tmp:
            shutil.copyfileobj(stream, tmp, 1 << 20)
            tmp.flush()
            yield from self._parquet_file_rows(tmp.name)

    def _parquet_file_rows(self, path: str) -> Iterator[InputRow]:
        if self.smiles_column is None:
            self._resolve_parquet_columns(path)
        assert self.smiles_column is not None
        cols = [self.smiles_column] + ([self.id_column] if self.id_column else [])
        idx = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=8192, columns=cols):
            smiles = batch.column(0).to_pylist()
            ids = (
                batch.column(1).to_pylist() if self.id_column else [None] * len(smiles)
            )
            for s, i in zip(smiles, ids):
                yield InputRow(
                    idx, str(idx) if i is None else str(i).strip(), (s or "").strip()
                )
                idx += 1


def open_input(
    path: str,
    smiles_column: str | None = None,
    id_column: str | None = None,
    input_format: str | None = None,
) -> InputSource:
    """Open a molecule input (a path, or "-" for stdin); fails early, with InputError, on a missing
    file, a binary file, a bad column, or column options a .smi input has no use for."""
    if input_format is not None and input_format not in FORMATS:
        raise InputError(
            f"unknown input format '{input_format}'; expected one of: {', '.join(FORMATS)}"
        )
    if is_stream(path):
        source = _open_stream(path, smiles_column, id_column, input_format)
    else:
        source = _open_file(path, smiles_column, id_column, input_format)
    if source.format == "smi" and (smiles_column or id_column):
        raise InputError(
            f"{source.name} is read as .smi (SMILES, then an optional id, on each line): "
            "--smiles-column and --id-column name columns of .csv, .tsv and .parquet inputs"
        )
    if source.format == "parquet" and (source.gzip or source.streamed):
        source.spool_parquet()
    return source


def _open_file(path: str, smiles_column: str | None, id_column: str | None, input_format: str | None) -> InputSource:
    if not os.path.exists(path):
        raise InputError(f"input file not found: {path}")
    if os.path.isdir(path):
        raise InputError(f"input path is a directory, not a file: {path}")
    if not os.access(path, os.R_OK):
        raise InputError(f"input file is not readable: {path}")
    try:
        fmt, gz = _detect_format(path)
        if input_format is None and fmt == "smi" and not _named_smi(path):
            fmt = _sniff_text(_head_text(path, gz), smiles_column)  # a table behind an unknown extension
        fmt = input_format or fmt
        if fmt != "parquet":
            _refuse_binary(path, gz)
    except (OSError, EOFError, zlib.error) as e:
        raise InputError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    return InputSource(path, fmt, gz, smiles_column, id_column)


def _open_stream(path: str, smiles_column: str | None, id_column: str | None, input_format: str | None) -> InputSource:
    """stdin or a pipe: its first bytes decide gzip, parquet or text (and, for text, .smi or a
    table with a SMILES column), then are read again as the start of the stream."""
    name = "<stdin>" if path == "-" else path
    try:
        raw = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115 - read later, by the source
        head = _read_head(raw, _SNIFF_BYTES)
    except OSError as e:
        raise InputError(f"cannot read {name}: {e.strerror or e}") from None
    gz = head[:2] == _GZIP_MAGIC
    text = _gunzip_head(head) if gz else head
    if input_format is not None:
        fmt = input_format
    elif text[:4] == _PARQUET_MAGIC:
        fmt = "parquet"
    else:
        fmt = _sniff_text(text, smiles_column)
    if fmt != "parquet" and (nul := text.find(b"\x00")) >= 0:
        raise InputError(f"{name} looks like binary data (NUL byte at offset {nul}), not SMILES text")
    if fmt in ("csv", "tsv"):  # a bad column fails now, not after the weights load
        header = _fields(_first_line(text), "\t" if fmt == "tsv" else ",")
        if header:
            _resolve_columns(header, smiles_column, id_column)
    return InputSource(path, fmt, gz, smiles_column, id_column, stream=_Prefixed(head, raw))


def _read_head(raw: IO[bytes], size: int) -> bytes:
    """Up to `size` bytes, fewer only at the end of the stream (a pipe returns what it holds)."""
    parts, got = [], 0
    while got < size and (block := raw.read(size - got)):
        parts.append(block)
        got += len(block)
    return b"".join(parts)


def _gunzip_head(head: bytes) -> bytes:
    try:
        return zlib.decompressobj(wbits=31).decompress(head, _SNIFF_BYTES)
    except zlib.error:
        return b""  # the reader reports a damaged stream with its position


def _head_text(path: str, gz: bool) -> bytes:
    with open(path, "rb") as f:
        head = f.read(_SNIFF_BYTES)
    return _gunzip_head(head) if gz else head


def _named_smi(path: str) -> bool:
    stem = path.lower().removesuffix(".gz")
    return stem.endswith((".smi", ".smiles"))


def _first_line(text: bytes) -> str:
    """The first line, as a table's reader will take it for the header."""
    lines = text.removeprefix(b"\xef\xbb\xbf").splitlines()
    return lines[0].decode("utf-8", errors="replace") if lines else ""


def _fields(line: str, delimiter: str) -> list[str]:
    return next(csv.reader([line], delimiter=delimiter), [])


def _sniff_text(text: bytes, smiles_column: str | None) -> str:
    """csv or tsv when the first line is a header with a SMILES column (or any delimited header,
    when the user named a column); else smi."""
    first = _first_line(text).strip()
    if first.startswith("#"):  # comments belong to .smi
        return "smi"
    for fmt, sep in (("tsv", "\t"), ("csv", ",")):
        if sep in first and (smiles_column is not None or _smiles_like(_fields(first, sep))):
            return fmt
    return "smi"


def _refuse_binary(path: str, gz: bool) -> None:
    """Text inputs never contain NUL bytes; refuse binary files before any work."""
    try:
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
            head = f.read(8192)
    except (EOFError, zlib.error):  # a damaged gzip is reported by the reader, with its position
        return
    nul = head.find(b"\x00")
    if nul >= 0:
        raise InputError(
            f"{path} looks like a binary file (NUL byte at offset {nul}), not SMILES text"
        )


def estimate_rows(source: InputSource) -> int | None:
    """A quick upper estimate of the row count for progress bars (None for stdin or a pipe): parquet
    row count, else the number of lines (header and comments included)."""
    if source.streamed:
        return None
    try:
        if source.format == "parquet" and not source.gzip:
            return int(pq.ParquetFile(source.path).metadata.num_rows)
        opener = gzip.open if source.gzip else open
        count = 0
        with opener(source.path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                count += block.count(b"\n")
        return max(count, 1)
    except (OSError, EOFError, zlib.error, pa.ArrowException):
        return None
