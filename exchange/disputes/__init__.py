"""Disputes: members challenge signals, forum staff decide, the forum signs the decision.

One package per capability: ``models`` (in the ``exchange`` app's tables), ``decisions``
(the signed decision format), ``selectors`` (who may see which dispute), ``services``
(open, respond, decide, the opinion threshold), ``events`` (``dispute.opened`` and
``dispute.decided`` webhooks), ``apis`` and ``openapi`` (the member API).
"""
