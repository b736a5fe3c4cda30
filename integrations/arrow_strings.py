"""Facts about an Arrow string column read straight off its buffers: no kernel, no copy.

Shared by the events API's column checks and the file import's parser.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def string_offsets(column: pa.StringArray) -> np.ndarray:
    """Where each value starts in the data buffer, and where the last one ends."""
    buffer = column.buffers()[1]
    if buffer is None:  # an empty array may have none
        return np.zeros(1, dtype=np.int32)
    return np.frombuffer(buffer, np.int32, len(column) + 1, column.offset * 4)


def has_nul(column: pa.StringArray) -> bool:
    """Whether a value holds a NUL character: a zero byte, which UTF-8 uses for nothing else."""
    data = column.buffers()[2]
    offsets = string_offsets(column)
    start, end = int(offsets[0]), int(offsets[-1])
    return data is not None and end > start and not np.frombuffer(data, np.uint8, end - start, start).all()
