"""Apply the user's ``mask`` callable before data leaves the process.

If the mask itself fails we drop the value rather than export it unmasked: the whole
point of a mask is that PII never reaches the server, so failing closed is the only
safe choice.
"""

from __future__ import annotations

from typing import Any

from ._config import MaskFn
from ._log import warn_once

MASK_FAILED = "<masking failed>"


def apply_mask(mask: MaskFn | None, value: Any) -> Any:
    if mask is None:
        return value
    try:
        return mask(value)
    except Exception as exc:
        warn_once("mask", "spyglass: the mask function raised %r; affected values are replaced", exc)
        return MASK_FAILED
