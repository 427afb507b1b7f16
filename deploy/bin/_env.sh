# shellcheck shell=sh
# Sourced by the start scripts in this directory; not a command of its own.
#
# Finds the project root from the script's own location, so the scripts work the same
# in the image (/app) and from a checkout with the virtualenv active, and whatever the
# caller's working directory is.

CORDIALE_ROOT=$(CDPATH='' cd -- "$(dirname -- "$0")/../.." && pwd)
# shellcheck disable=SC2034  # read by the scripts that source this file
CORDIALE_DEPLOY="$CORDIALE_ROOT/deploy"
export CORDIALE_ROOT

# In a checkout the source tree must win over any older copy installed in the
# virtualenv; in the image the root holds only manage.py and deploy/, so this is a no-op.
PYTHONPATH="$CORDIALE_ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPATH

: "${DJANGO_SETTINGS_MODULE:=forum.settings}"
export DJANGO_SETTINGS_MODULE

cd "$CORDIALE_ROOT" || exit
