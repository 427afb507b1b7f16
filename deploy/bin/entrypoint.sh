#!/bin/sh
# Container entrypoint: the first argument names the process.
#
#   web [GUNICORN_OPTION...]          gunicorn (the image's default)
#   worker [QUEUES [OPTION...]]       celery worker, e.g. `worker delivery`
#   beat [OPTION...]                  celery beat
#   migrate [OPTION...]               wait for the database, then manage.py migrate
#   manage COMMAND [ARG...]           any manage.py command
#   anything else                     run as given (`cordiale sync ...`, `sh`)
set -eu
bin=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)

case "${1:-web}" in
    web | worker | beat | migrate)
        cmd=${1:-web}
        [ $# -gt 0 ] && shift
        exec "$bin/$cmd" "$@"
        ;;
    manage)
        shift
        # shellcheck source=_env.sh
        . "$bin/_env.sh"
        exec python manage.py "$@"
        ;;
    *)
        exec "$@"
        ;;
esac
