"""
Local hashing of media for ``cordiale match``: PDQ for images, with the optional extra
``pdq`` (``pdqhash``, Pillow, numpy). Only the hash leaves the member's machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class HashingUnavailable(RuntimeError):
    """The optional packages for hashing images locally are not installed."""

    code = "pdqhash_missing"


def pdq_hash_file(path: Path) -> tuple[str, int]:
    """The PDQ hash of an image file as 64 lowercase hex characters, and its quality (0-100)."""
    try:
        import numpy
        import pdqhash
        from PIL import Image
    except ImportError as exc:
        raise HashingUnavailable(
            f"hashing images needs the optional packages pdqhash, Pillow and numpy ({exc.name} "
            "is missing); install them with the 'pdq' extra, or pass pdq:<hex> instead"
        ) from exc
    with Image.open(path) as image:
        pixels: Any = numpy.asarray(image.convert("RGB"))
    bits, quality = pdqhash.compute(pixels)
    # pdqhash gives the 256 bits most significant first, as python-threatexchange reads them.
    number = int("".join(str(int(bit)) for bit in bits), 2)
    return f"{number:064x}", int(quality)
