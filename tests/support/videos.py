"""Short test videos made with FFmpeg at test time, and the copies platforms make of them.

A *source* is one of FFmpeg's generated inputs rendered at 320x240, 25 frames/s, for 12
seconds: big enough for PDQ to see structure, small enough that making and hashing one
takes a fraction of a second. The ``SOURCES`` behave like filmed footage: a slow zoom
into a Mandelbrot set (each at its own place), so that one second's frame differs from the
next by 4 to 20 bits, as consecutive frames of a real scene do. The ``UNRELATED`` ones are
other material (test patterns, cellular automata, moving shapes with text), which change
quickly. A *transform* re-encodes a video the way re-uploads change it.

    source = make_source(tmp_path, "zoom-seahorse")
    copy = transform(source, tmp_path, "watermark")

Measured with python-threatexchange's matcher on these sources (query / compared %): every
transform in ``TRANSFORMS`` keeps 75-100 % of the frames within distance 31, except
``crop``: cutting 5 % off each side moves PDQ's 64x64 grid by 3 pixels and most frames by
40-90 bits (PDQ is not built to survive crops), so a copy is found only as far as the zoom
happens to bring the original's later frames into the cropped view. ``CROP_AREA`` (2.5 % off
each side, a tenth of the area) is what PDQ tolerates on still frames, at 30-45 bits: it
too is at the edge.

Nothing here is committed as a binary: every video is generated, deterministically (fixed
seeds for the random sources), into the caller's temporary directory.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.support.services import unavailable

SIZE = "320x240"
RATE = 25
SECONDS = 12

_ZOOM = f"mandelbrot=size={SIZE}:rate={RATE}:end_pts=8000"
SOURCES: dict[str, str] = {
    "zoom-whole": f"{_ZOOM}:start_scale=2.5:end_scale=0.1",
    "zoom-seahorse": (
        f"{_ZOOM}:start_scale=1.5:end_scale=0.1"
        ":start_x=-0.743643887037158704752191506114774:start_y=-0.131825904205311970493132056385139"
    ),
    "zoom-julia": (
        f"{_ZOOM}:start_scale=1.2:end_scale=0.05:start_x=0.285:start_y=0.01"
        ":outer=normalized_iteration_count"
    ),
}
UNRELATED: dict[str, str] = {
    "testsrc2": f"testsrc2=size={SIZE}:rate={RATE}",
    "life": (
        f"life=size={SIZE}:rate={RATE}:seed=7:ratio=0.3:mold=20"
        ":life_color=#ffd700:death_color=#202060:mold_color=#702020"
    ),
    "cellauto": f"cellauto=size={SIZE}:rate={RATE}:rule=110:seed=3:scroll=1",
    "shapes": (
        f"color=c=#1e3c78:size={SIZE}:rate={RATE},"
        "drawbox=x='mod(t*60,260)':y='40+30*sin(t)':w=80:h=80:color=#f0c000:t=fill,"
        "drawbox=x='240-mod(t*45,220)':y='140':w=60:h=90:color=#d03030:t=fill,"
        "drawtext=text='Frame %{n}':x='20+mod(t*20,150)':y=200:fontsize=28:fontcolor=white"
    ),
}

# Output options for each transform; each keeps the video recognisable to a person.
TRANSFORMS: dict[str, list[str]] = {
    # Platforms re-encode every upload; a low bitrate blurs and blocks.
    "bitrate": ["-b:v", "120k", "-maxrate", "120k", "-bufsize", "240k"],
    "upscale": ["-vf", "scale=480:360"],
    "downscale": ["-vf", "scale=160:120"],
    # 10 % of each dimension cut off, 5 % from each side.
    "crop": ["-vf", "crop=iw*0.9:ih*0.9:iw*0.05:ih*0.05"],
    "watermark": [
        "-vf",
        "drawtext=text='@reuploader':x=w-tw-8:y=h-th-8:fontsize=16:fontcolor=white@0.7",
    ],
    # The first 2.5 s and the last 2 s cut: the copy samples between the source's seconds.
    "trim": ["-ss", "2.5", "-t", str(SECONDS - 4.5)],
    "framerate": ["-r", "15"],
}
# A tenth of the area: 2.5 % off each side.
CROP_AREA = ["-vf", "crop=iw*0.95:ih*0.95:iw*0.025:ih*0.025"]


def need_video_tools() -> None:
    """ffmpeg and the vpdq package, or a skip (a failure under CI, which installs both)."""
    missing = [name for name in ("ffmpeg",) if shutil.which(name) is None]
    try:
        import vpdq  # noqa: F401
    except ImportError:
        missing.append("the vpdq package (extra 'video')")
    if missing:
        what = " and ".join(missing)
        unavailable(f"CI=true but {what} is missing", f"SKIPPED LOUDLY: needs {what}")


def _run(args: list[str]) -> None:
    done = subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(args)} failed: {done.stderr.strip()}")


def _encode() -> list[str]:
    return ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-an"]


def make_source(directory: Path, name: str, seconds: float = SECONDS) -> Path:
    """Render ``name`` (of ``SOURCES`` or ``UNRELATED``) as ``directory/name.mp4``."""
    graph = SOURCES.get(name) or UNRELATED[name]
    out = directory / f"{name}.mp4"
    _run(["-f", "lavfi", "-i", graph, "-t", str(seconds), *_encode(), str(out)])
    return out


def transform(source: Path, directory: Path, kind: str, options: list[str] | None = None) -> Path:
    """A copy of ``source`` changed by the transform ``kind`` of ``TRANSFORMS`` (or by
    ``options``, named ``kind``)."""
    out = directory / f"{source.stem}.{kind}.mp4"
    options = TRANSFORMS[kind] if options is None else options
    if kind == "trim":  # seek on the input: the copy's clock starts at the cut
        _run([*options[:2], "-i", str(source), *options[2:], *_encode(), str(out)])
    elif kind == "bitrate":  # after the encoder's defaults, which it overrides
        _run(["-i", str(source), *_encode(), *options, str(out)])
    else:
        _run(["-i", str(source), *options, *_encode(), str(out)])
    return out
