"""The fault and load campaign (issue #15): a whole Cordiale installation of its own under
load from 20+ members while a scheduler breaks its parts, then exact checks.

    python -m tests.chaos --minutes 20 --fault-interval 60 --json chaos.json

- ``cluster``: a private PostgreSQL (initdb on a free port), redis-server, gunicorn with
  the production configuration, Celery workers and beat, each one killable and restartable.
- ``population``: members in separate sharing groups, their keys and webhook endpoints.
- ``receivers``: the members' webhook receivers (normal, slow, failing, down for a while).
- ``ledger``: what the members were told (statements accepted, every HTTP attempt with
  its status and latency, every value a member was shown).
- ``drivers``: one thread per member submitting, syncing a replica, matching, probing.
- ``faults``: the scheduler that injects faults and records PostgreSQL's down windows.
- ``checks``: the exact checks at the end (loss, leaks, replicas, webhooks, 5xx).
- ``report``: the printed summary and the JSON summary file.
- ``campaign``: the command line and the order of it all.

Everything here is a script run by ``python -m tests.chaos`` (the CI profile runs it
through ``tests/chaos/test_campaign.py``); it configures Django itself against its own
database, so nothing here imports Django at module level.
"""
