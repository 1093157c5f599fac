"""Class predictions written to a CSV (a row per input)."""

from __future__ import annotations

from .array import *  # noqa: F401,F403
from .array import __all__ as _array_all
from .dictionary import *  # noqa: F401,F403
from .dictionary import __all__ as _dict_all

__all__ = [*_array_all, *_dict_all]
