#!/bin/sh
# Regenerates the hash-locked requirement files from pyproject.toml:
#
#   dev-lock.txt   the runtime dependencies, the dev extra and the video extra (CI,
#                  developers; vpdq has no wheels and builds against FFmpeg's
#                  development packages, so the dev extra leaves it out for a plain
#                  `pip install -e '.[dev]'` on a machine without them)
#   lock.txt       the runtime dependencies only (the container image), at the same
#                  versions as dev-lock.txt
#   bootstrap.txt  pip and the build backend (from bootstrap.in)
#
# Usage, from anywhere in the checkout (needs uv, `pip install uv`, and access to PyPI):
#
#   sh requirements/compile.sh                          # after editing pyproject.toml
#   sh requirements/compile.sh --upgrade-package django  # move one package
#   sh requirements/compile.sh --upgrade                 # move everything
#
# Without --upgrade, uv keeps every version already pinned and only resolves what is
# new or no longer satisfied. The files are for CPython 3.11 on Linux x86_64 and list
# every file hash of each pinned release (wheels for all its platforms and the sdist).
# The server depends on cordiale-client, which lives in this checkout (exchange/client/,
# found through [tool.uv.sources] in pyproject.toml): its dependencies are locked, the
# client itself is not (CI and the image install it from the path).
set -eu
cd "$(dirname -- "$0")/.."
UV=${UV:-uv}

compile() {
    "$UV" pip compile --quiet --generate-hashes \
        --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
        --custom-compile-command "sh requirements/compile.sh" \
        --no-emit-package cordiale-client "$@"
}

compile pyproject.toml --extra dev --extra video -o requirements/dev-lock.txt "$@"
# Constrained by the dev lock, so that CI tests exactly the versions the image ships.
compile pyproject.toml -c requirements/dev-lock.txt -o requirements/lock.txt "$@"
compile requirements/bootstrap.in -o requirements/bootstrap.txt "$@"
