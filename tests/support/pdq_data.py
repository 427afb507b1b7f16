"""Synthetic PDQ data for benchmarks and tests: uniform, or clustered like video frames.

Uniformly random hashes are the easy case for the multi-index: every 16-bit chunk value
is equally likely, so each bucket holds N / 65536 entries. Real frame hashes are not
like that, in two ways this generator reproduces (numpy only, seeded):

- **per-bit biases**: PDQ thresholds DCT coefficients at their median, so a hash has
  about as many ones as zeros, but a given bit is not a fair coin across images (low
  frequencies, letterboxing, dark scenes). Each bit b has its own probability p_b of
  being 1, drawn uniformly in [0.5 - bias, 0.5 + bias] (default bias 0.2): chunk values
  are then unevenly likely, and the buckets a query probes are fuller than average
  (at bias 0.2, sum over a chunk's values of P(v)^2 is about 2.3 x the uniform 1/65536);
- **scenes**: consecutive frames of a shot differ by a few bits. A scene starts from a
  root hash drawn with the biases above; each next frame flips ``step`` random bits of
  the previous one (1 to 4 by default), so a scene of 10 frames is a tight cluster
  whose members mostly share most chunks (they fill the same buckets).

    >>> rng = np.random.default_rng(1)
    >>> clustered_hashes(rng, 1_000).shape
    (1000, 32)
    >>> videos = clustered_videos(rng, 10, frames=60)   # (10, 60, 32): 6 scenes of 10
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
F64 = npt.NDArray[np.float64]

DEFAULT_BIAS = 0.2
DEFAULT_SCENE_FRAMES = 10
DEFAULT_STEP = (1, 4)
_BLOCK = 1 << 20  # rows generated at once (bounded temporary memory)


def uniform_hashes(rng: np.random.Generator, n: int) -> U8:
    """``n`` uniformly random PDQ hashes, (n, 32) uint8."""
    return rng.integers(0, 256, size=(n, 32), dtype=np.uint8)


def bit_probabilities(rng: np.random.Generator, bias: float = DEFAULT_BIAS) -> F64:
    """P(bit = 1) for each of the 256 bits, uniform in [0.5 - bias, 0.5 + bias]."""
    return 0.5 + rng.uniform(-bias, bias, size=256)


def biased_hashes(rng: np.random.Generator, n: int, probabilities: F64) -> U8:
    """``n`` independent hashes whose bit b is 1 with probability ``probabilities[b]``."""
    out = np.empty((n, 32), dtype=np.uint8)
    for start in range(0, n, _BLOCK):
        rows = min(_BLOCK, n - start)
        out[start : start + rows] = np.packbits(rng.random((rows, 256)) < probabilities, axis=1)
    return out


def flip_bits(rng: np.random.Generator, hashes: U8, counts: npt.ArrayLike) -> U8:
    """A copy of ``hashes`` with ``counts[i]`` distinct random bits of row i flipped."""
    hashes = np.array(hashes, dtype=np.uint8, copy=True)
    n = len(hashes)
    counts = np.broadcast_to(np.asarray(counts, dtype=np.int64), (n,))
    for start in range(0, n, 1 << 16):
        block = slice(start, min(n, start + (1 << 16)))
        # Distinct positions per row: the first counts[i] of a random ranking of the bits.
        ranks = np.argsort(rng.random((block.stop - start, 256)), axis=1)
        _flip(hashes[block], ranks, counts[block])
    return hashes


def _flip(hashes: U8, positions: npt.NDArray[np.int64], counts: npt.NDArray[np.int64]) -> None:
    """Flip, in place, bits positions[i, :counts[i]] of row i."""
    rows = np.arange(len(hashes))
    for c in range(int(counts.max(initial=0))):
        sel = rows[counts > c]
        pos = positions[sel, c]
        hashes[sel, pos >> 3] ^= (128 >> (pos & 7)).astype(np.uint8)


def clustered_hashes(
    rng: np.random.Generator,
    n: int,
    *,
    scene_frames: int = DEFAULT_SCENE_FRAMES,
    step: tuple[int, int] = DEFAULT_STEP,
    bias: float = DEFAULT_BIAS,
    probabilities: F64 | None = None,
) -> U8:
    """``n`` hashes in scenes of ``scene_frames`` consecutive frames (rows), each frame
    up to ``step`` bits (inclusive range) away from the previous one."""
    p = bit_probabilities(rng, bias) if probabilities is None else probabilities
    out = np.empty((n, 32), dtype=np.uint8)
    per_block = max(scene_frames, _BLOCK // scene_frames * scene_frames)
    for start in range(0, n, per_block):
        rows = min(per_block, n - start)
        scenes = -(-rows // scene_frames)
        roots = biased_hashes(rng, scenes, p)
        flips = rng.integers(step[0], step[1] + 1, size=scenes * scene_frames)
        flips.reshape(scenes, scene_frames)[:, 0] = 0  # the first frame is the root
        # Positions drawn independently (fast): two equal ones cancel, so a frame is
        # at most, not exactly, ``flips`` bits from the previous one; an unchanged
        # frame is a real video's duplicate frame.
        deltas = np.zeros((scenes * scene_frames, 32), np.uint8)
        _flip(deltas, rng.integers(0, 256, size=(len(flips), step[1])), flips)
        walk = np.bitwise_xor.accumulate(deltas.reshape(scenes, scene_frames, 32), axis=1)
        frames = (walk ^ roots[:, None, :]).reshape(-1, 32)
        out[start : start + rows] = frames[:rows]
    return out


def clustered_videos(
    rng: np.random.Generator,
    n_videos: int,
    *,
    frames: int = 60,
    scene_frames: int = DEFAULT_SCENE_FRAMES,
    bias: float = DEFAULT_BIAS,
    probabilities: F64 | None = None,
) -> U8:
    """``n_videos`` videos of ``frames`` frame hashes each, (n_videos, frames, 32): a
    video is ``frames / scene_frames`` scenes (see ``clustered_hashes``)."""
    hashes = clustered_hashes(
        rng,
        n_videos * frames,
        scene_frames=scene_frames,
        bias=bias,
        probabilities=probabilities,
    )
    return hashes.reshape(n_videos, frames, 32)


def to_hex(hashes: U8) -> list[str]:
    """The 64-digit hex strings of (n, 32) hashes."""
    text = np.ascontiguousarray(hashes).tobytes().hex()
    return [text[i : i + 64] for i in range(0, len(text), 64)]
