"""
Local hashing of media for ``cordiale match``, ``cordiale hash`` and the ``file`` column of
``cordiale submit``: MD5 and SHA-256 of any file, PDQ for images with the optional extra
``pdq`` (``pdqhash``, Pillow, numpy), vPDQ for videos with the optional extra ``video`` (the
``vpdq`` package, which builds against FFmpeg). Only the hashes leave the member's machine.

vPDQ is computed exactly as python-threatexchange's vpdq extension does it
(``VPDQSignal.hash_from_file``): ``vpdq.computeHash`` decodes the video with FFmpeg and
hashes one frame per second of video time (``seconds_per_hash=1``) with PDQ, each frame with
its quality and timestamp; the value is the JSON list of ``"<pdq hex>,<quality>,<seconds>"``
strings (``exchange.client.signal_types.VpdqSignal``). tests/client/test_video_hashing.py
checks that the values are equal to the reference's, byte for byte, on generated videos.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exchange.client.signal_types import InvalidSignalValue, get_signal_type

CHUNK = 1 << 20


# Decided by the name, as for images: FFmpeg reads many formats that are no videos (images
# included), so a file is hashed as a video only when it is named like one.
VIDEO_SUFFIXES = frozenset(
    {".3gp", ".avi", ".flv", ".m2ts", ".m4v", ".mkv", ".mov", ".mp4"}
    | {".mpeg", ".mpg", ".mts", ".ogv", ".ts", ".webm", ".wmv"}
)
# python-threatexchange's vpdq extension hashes one frame per second of video.
VPDQ_SECONDS_PER_HASH = 1.0
# Its matcher leaves frames of a lower PDQ quality out of both videos.
VPDQ_QUALITY_THRESHOLD = 50
VIDEO_EXTRA_HINT = (
    "install the 'video' extra (pip install 'cordiale-client[video]'; the vpdq package builds "
    "against FFmpeg: apt-get install ffmpeg libavcodec-dev libavformat-dev libavutil-dev "
    "libswscale-dev libavdevice-dev libavfilter-dev pkg-config cmake g++)"
)


class HashingUnavailable(RuntimeError):
    """The optional packages for hashing this kind of media locally are not installed."""

    def __init__(self, message: str, code: str = "pdqhash_missing") -> None:
        super().__init__(message)
        self.code = code


class UnreadableMedia(ValueError):
    """The file cannot be hashed as the media it was taken for."""

    code = "unreadable_media"


def is_video(path: Path) -> bool:
    """Whether ``path`` is named like a video file."""
    guessed = mimetypes.guess_type(path.name)[0] or ""
    return path.suffix.lower() in VIDEO_SUFFIXES or guessed.startswith("video/")


@dataclass
class VideoHash:
    """A video's vPDQ value and what a member may want to know about it."""

    value: str
    frames: int
    low_quality_frames: int  # below the reference matcher's quality threshold (50)


def vpdq_hash_file(path: Path, *, seconds_per_hash: float = VPDQ_SECONDS_PER_HASH) -> VideoHash:
    """The vPDQ value of a video file in the forum's canonical form (the reference's)."""
    try:
        import vpdq
    except ImportError as exc:
        raise HashingUnavailable(
            f"hashing videos needs the optional package vpdq ({exc.name} is missing): "
            f"{VIDEO_EXTRA_HINT}; or pass vpdq:<value> instead",
            code="vpdq_missing",
        ) from exc
    if not path.is_file():
        raise UnreadableMedia(f"{path}: no such file")
    try:
        features = vpdq.computeHash(str(path), seconds_per_hash=seconds_per_hash)
    except Exception as exc:  # vpdq raises a bare Exception when FFmpeg cannot decode
        raise UnreadableMedia(f"{path}: not a video FFmpeg can decode ({exc})") from exc
    if not features:
        raise UnreadableMedia(f"{path}: the video has no frame to hash")
    # python-threatexchange's VpdqCompactFeature.__str__: f"{hex},{quality},{timestamp:.3}".
    frames = [f"{f.hex},{f.quality},{float(f.timestamp):.3}" for f in features]
    try:
        value = get_signal_type("vpdq").validate(json.dumps(frames))
    except InvalidSignalValue as exc:  # e.g. longer than the forum takes
        raise UnreadableMedia(f"{path}: {exc.hint}") from exc
    low = sum(int(f.quality) < VPDQ_QUALITY_THRESHOLD for f in features)
    return VideoHash(value=value, frames=len(frames), low_quality_frames=low)


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
    video: VideoHash | None = None


def file_hashes(path: Path) -> FileHashes:
    """MD5 and SHA-256 of the bytes; PDQ if the file is an image and the extra is here."""
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            md5.update(chunk)
            sha256.update(chunk)
    result = FileHashes(hashes=[("md5", md5.hexdigest()), ("sha256", sha256.hexdigest())])
    if is_video(path):
        result.notes["pdq"] = "a video, not an image"
        try:
            result.video = vpdq_hash_file(path)
        except (HashingUnavailable, UnreadableMedia) as exc:
            result.notes["vpdq"] = str(exc)
        else:
            result.hashes.append(("vpdq", result.video.value))
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


# The signal types a file's value can be computed locally for (``cordiale submit``).
FILE_SIGNAL_TYPES = ("md5", "sha256", "pdq", "vpdq")


def file_value(path: Path, signal_type: str) -> str:
    """One hash of a file, for a ``file`` row of ``cordiale submit``."""
    if signal_type == "vpdq":
        return vpdq_hash_file(path).value
    if signal_type == "pdq":
        try:
            return pdq_hash_file(path)[0]
        except (OSError, ValueError) as exc:  # Pillow: UnidentifiedImageError is an OSError
            if not path.is_file():
                raise
            raise UnreadableMedia(f"{path}: not an image Pillow can read") from exc
    if signal_type not in ("md5", "sha256"):
        raise ValueError(f"no local hashing for {signal_type}")
    digest = hashlib.new(signal_type, usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
