"""Results as JSON: money stays exact (a Decimal becomes its string), dates are ISO 8601."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import numpy as np


def to_jsonable(value: Any) -> Any:
    """``value`` with every Decimal, date, numpy scalar and non-finite float made JSON-safe."""
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # NaN or infinity: no answer, not a number that looks fine
    return value
