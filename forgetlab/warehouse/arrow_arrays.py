"""Arrow arrays to and from numpy and Python lists without pyarrow's converters.

Why: `pa.array(...)`, `pa.table({...lists})` and `Array.to_numpy()` all import pandas on their
first call (pyarrow checks whether its input is a pandas object), which costs 0.3-0.5 s of an
export's 1-2 s and which nothing in an export otherwise needs. Arrow's fixed-width and string
layouts are simple enough to build from buffers directly (`pa.Array.from_buffers`); everything
else (dictionary encoding, casts, concatenation) stays pyarrow's.
"""

from __future__ import annotations

import operator
from typing import Optional, Sequence

import numpy as np
import pyarrow as pa

_NUMPY_TYPES = {
    pa.int8(): np.int8, pa.int16(): np.int16, pa.int32(): np.int32, pa.int64(): np.int64,
    pa.uint8(): np.uint8, pa.uint16(): np.uint16, pa.uint32(): np.uint32, pa.uint64(): np.uint64,
    pa.float32(): np.float32, pa.float64(): np.float64,
}  # fmt: skip


def _bits(mask: np.ndarray) -> pa.Buffer:
    """A boolean numpy array as Arrow's bitmap (least significant bit first)."""
    return pa.py_buffer(np.packbits(mask.astype(bool, copy=False), bitorder="little"))


def numpy_of(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The values of a null-free integer, float or boolean column as numpy (a view where Arrow's
    layout allows). Columns with nulls, or of other types, go through pyarrow's own converter."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_timestamp(array.type):
        array = array.view(pa.int64())  # epoch integers either way, nulls or not
    if array.null_count:
        return array.to_numpy(zero_copy_only=False)
    if pa.types.is_boolean(array.type):
        bits = np.frombuffer(array.buffers()[1], dtype=np.uint8)
        return np.unpackbits(bits, bitorder="little")[array.offset : array.offset + len(array)].astype(bool)
    dtype = _NUMPY_TYPES.get(array.type)
    if dtype is None:
        return array.to_numpy(zero_copy_only=False)
    return np.frombuffer(
        array.buffers()[1], dtype=dtype, count=len(array), offset=array.offset * np.dtype(dtype).itemsize
    )


def array_of(values: np.ndarray, type: pa.DataType, valid: Optional[np.ndarray] = None) -> pa.Array:
    """A numpy array as an Arrow array of `type` (fixed width, boolean or timestamp); where
    `valid` is False the entry is NULL."""
    count = len(values)
    validity = None if valid is None or valid.all() else _bits(valid)
    if pa.types.is_boolean(type):
        data = _bits(values)
    else:
        storage = pa.int64() if pa.types.is_timestamp(type) else type
        data = pa.py_buffer(np.ascontiguousarray(values, dtype=_NUMPY_TYPES[storage]))
    return pa.Array.from_buffers(type, count, [validity, data])


def array_from_python(values: Sequence, type: pa.DataType) -> pa.Array:
    """A list of Python strings or integers (None for NULL) as an Arrow array of `type`: string,
    integer, or timestamp (from epoch integers in the timestamp's unit)."""
    valid = np.fromiter((value is not None for value in values), dtype=bool, count=len(values))
    if pa.types.is_string(type):
        encoded = [_utf8(value) for value in values]
        ends = np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)))
        if len(ends) and ends[-1] >= 2**31:
            raise ValueError("more than 2 GiB of text in one column: Arrow's string type cannot hold it")
        offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
        offsets[1:] = ends
        validity = None if valid.all() else _bits(valid)
        return pa.Array.from_buffers(
            type, len(encoded), [validity, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
        )
    if not (pa.types.is_integer(type) or pa.types.is_timestamp(type)):
        raise TypeError(f"array_from_python builds string, integer and timestamp arrays, not {type}")
    integers = np.fromiter((0 if value is None else operator.index(value) for value in values), dtype=np.int64,
                           count=len(values))  # fmt: skip
    storage = pa.int64() if pa.types.is_timestamp(type) else type
    info = np.iinfo(_NUMPY_TYPES[storage])
    if len(integers) and (integers.min() < info.min or integers.max() > info.max):
        raise OverflowError(f"a value does not fit {type}")
    return array_of(integers, type, valid)


def table_from_python(columns: Sequence[Sequence], schema: pa.Schema) -> pa.Table:
    """Columns of Python values (one sequence per field of `schema`) as a typed Arrow table."""
    return pa.Table.from_arrays([array_from_python(values, field.type) for values, field in zip(columns, schema)],
                                schema=schema)  # fmt: skip


def _utf8(value) -> bytes:
    """A string column's entry as UTF-8: SQLite's loose typing can hand back bytes (text stored as
    a BLOB) or a number where text is declared; NULL becomes an empty slot under the validity bit."""
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    return (value if isinstance(value, str) else str(value)).encode()
