"""Arrow arrays from numpy and string lists, built from their buffers.

`pa.array()` asks on its first call whether the input is a pandas object, and that question
imports pandas where it is installed: ~0.4 s of a 3.4 s start-up, paid by every `hsafeat embed`
that never touches pandas. `pa.Array.from_buffers` takes the buffers as they are and asks
nothing; the arrays, and so the files written from them, are the same."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

_MAX_STRING_BYTES = 2**31 - 1   # int32 offsets of pa.string()


def _bitmap(bits: np.ndarray) -> pa.Buffer:
    return pa.py_buffer(np.packbits(np.asarray(bits, dtype=bool), bitorder="little"))


def _validity(valid: np.ndarray | None) -> pa.Buffer | None:
    return None if valid is None or valid.all() else _bitmap(valid)


def int64_array(values: np.ndarray) -> pa.Array:
    data = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(data), [None, pa.py_buffer(data)], null_count=0)


def bool_array(values: np.ndarray) -> pa.Array:
    return pa.Array.from_buffers(pa.bool_(), len(values), [None, _bitmap(values)], null_count=0)


def float32_array(values: np.ndarray, invalid: np.ndarray | None = None) -> pa.Array:
    """invalid: rows written as nulls."""
    data = np.ascontiguousarray(values, dtype=np.float32)
    valid = None if invalid is None else ~np.asarray(invalid, dtype=bool)
    nulls = 0 if valid is None else int((~valid).sum())
    return pa.Array.from_buffers(pa.float32(), len(data), [_validity(valid), pa.py_buffer(data)], null_count=nulls)


def fixed_size_list_array(values: np.ndarray, invalid: np.ndarray) -> pa.Array:
    """values: n x d float32, one list of d per row; invalid rows are null lists."""
    n, d = values.shape
    child = float32_array(values.reshape(-1))
    valid = ~np.asarray(invalid, dtype=bool)
    return pa.Array.from_buffers(pa.list_(pa.float32(), d), n, [_validity(valid)], null_count=int((~valid).sum()),
                                 children=[child])


def string_array(values: Sequence[str | None]) -> pa.Array:
    """None becomes null. Anything but str or None (or more than 2 GiB of text) goes through
    pa.array, which converts or refuses it as before."""
    if not all(v is None or type(v) is str for v in values):
        return pa.array(values, pa.string())
    encoded = [b"" if v is None else v.encode("utf-8") for v in values]
    lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded))
    if lengths.sum() > _MAX_STRING_BYTES:
        return pa.array(values, pa.string())
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:], dtype=np.int32)
    valid = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
    return pa.Array.from_buffers(pa.string(), len(encoded),
                                 [_validity(valid), pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))],
                                 null_count=int((~valid).sum()))
