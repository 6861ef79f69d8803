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


def null_mask(invalid: np.ndarray | None) -> tuple[pa.Buffer | None, int]:
    """(validity bitmap, null count) for rows flagged invalid; built once, shared by every column."""
    if invalid is None:
        return None, 0
    invalid = np.asarray(invalid, dtype=bool)
    nulls = int(invalid.sum())
    return (_bitmap(~invalid) if nulls else None), nulls


def int64_array(values: np.ndarray) -> pa.Array:
    data = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(data), [None, pa.py_buffer(data)], null_count=0)


def bool_array(values: np.ndarray) -> pa.Array:
    return pa.Array.from_buffers(pa.bool_(), len(values), [None, _bitmap(values)], null_count=0)


def float32_array(values: np.ndarray, mask: tuple[pa.Buffer | None, int] = (None, 0)) -> pa.Array:
    """mask: null_mask() of the rows written as nulls."""
    data = np.ascontiguousarray(values, dtype=np.float32)
    return pa.Array.from_buffers(pa.float32(), len(data), [mask[0], pa.py_buffer(data)], null_count=mask[1])


def fixed_size_list_array(values: np.ndarray, mask: tuple[pa.Buffer | None, int]) -> pa.Array:
    """values: n x d float32, one list of d per row; mask: null_mask() of the null rows."""
    n, d = values.shape
    return pa.Array.from_buffers(pa.list_(pa.float32(), d), n, [mask[0]], null_count=mask[1],
                                 children=[float32_array(values.reshape(-1))])


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
    validity, nulls = null_mask(np.fromiter((v is None for v in values), dtype=bool, count=len(values)))
    return pa.Array.from_buffers(pa.string(), len(encoded), [validity, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))],
                                 null_count=nulls)
