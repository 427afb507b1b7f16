"""Webhooks: the change feed pushed to members' HTTPS endpoints.

One package per capability: ``models`` (endpoints and the delivery log, in the
``exchange`` app's tables), ``secrets`` (the ``whsec_`` signing secrets, encrypted at
rest), ``targets`` (where a URL may point), ``endpoints`` (the services that create,
change, rotate, enable and disable endpoints), ``delivery/`` (waking endpoints when
the feed changes, building pages, signing and sending them), ``apis`` (the member API)
and ``admin`` (the forum admin's view). Its Celery tasks keep their names in
``exchange/tasks.py``; its feed listener is registered in ``ExchangeConfig.ready()``.
"""
