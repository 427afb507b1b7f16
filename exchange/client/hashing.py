"""
Local hashing of media for ``cordiale match``: MD5 and SHA-256 of any file, PDQ for
images with the optional extra ``pdq`` (``pdqhash``, Pillow, numpy). Only the hashes leave
the member's machine.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


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


@dataclass
class FileHashes:
    """Every hash ``cordiale`` can compute for one file, and why the others could not be."""

    hashes: list[tuple[str, str]] = field(default_factory=list)  # (signal_type, value)
    notes: dict[str, str] = field(default_factory=dict)  # signal_type -> why not computed
    pdq_quality: int | None = None


def file_hashes(path: Path) -> FileHashes:
    """MD5 and SHA-256 of the bytes; PDQ if the file is an image and the extra is here."""
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            md5.update(chunk)
            sha256.update(chunk)
    result = FileHashes(hashes=[("md5", md5.hexdigest()), ("sha256", sha256.hexdigest())])
    guessed = mimetypes.guess_type(path.name)[0] or ""
    if guessed.startswith("video/"):
        result.notes["vpdq"] = "video hashing (vPDQ) is not available in this version"
        result.notes["pdq"] = "a video, not an image"
        return result
    try:
        value, quality = pdq_hash_file(path)
    except HashingUnavailable as exc:
        result.notes["pdq"] = str(exc)
    except (OSError, ValueError) as exc:  # Pillow: UnidentifiedImageError is an OSError
        result.notes["pdq"] = f"not an image Pillow can read ({exc.__class__.__name__})"
    else:
        result.hashes.append(("pdq", value))
        result.pdq_quality = quality
    return result
