"""Who may see which dispute, and what of it.

A dispute follows its signal: a member sees it while it may see the signal, by the one
visibility rule of ``exchange.selectors``. An overturned signal is seen by nobody, yet
the members who would see it but for the overturn keep seeing its disputes, so that
the parties read the decision that withdrew it. Nothing else widens the audience: a
dispute on a value a member never could see is the same 404 as a dispute that does
not exist.

Inside a visible dispute, the opener is never named (``mine`` tells the caller whether
it is its own), and a response is shown only to a reader that sees one of the
responder's statements on the signal now (or to the responder): a member that answers
for a statement addressed to its group does not reveal that statement to the others.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from exchange.feed import Reader
from exchange.models import Dispute, DisputeDecision, DisputeResponse
from exchange.selectors import visible_clause, visible_statements
from members.models import Member

from ..db import fetchall, in_list

MAX_PAGE = 100
DEFAULT_PAGE = 50


def _visible_dispute_ids(
    reader: Reader,
    *,
    dispute_ids: list[int] | None,
    status: str | None,
    before: int | None,
    limit: int,
) -> list[int]:
    now = int(time.time())
    clause, params = visible_clause(reader, now)
    where: list[str] = []
    args: list[Any] = []
    if dispute_ids is not None:
        ids_clause, ids_params = in_list("d.id", dispute_ids)
        where.append(ids_clause)
        args.extend(ids_params)
    if status is not None:
        where.append("d.status = %s")
        args.append(status)
    if before is not None:
        where.append("d.id < %s")
        args.append(before)
    where.append(
        "EXISTS (SELECT 1 FROM exchange_currentstatement cs "
        f"WHERE cs.signal_id = d.signal_id AND {clause})"
    )
    rows = fetchall(
        f"SELECT d.id FROM exchange_dispute d WHERE {' AND '.join(where)} "
        "ORDER BY d.id DESC LIMIT %s",
        [*args, *params, limit],
    )
    return [int(r[0]) for r in rows]


def dispute_get_visible(*, member: Member, dispute_id: int) -> Dispute | None:
    """The dispute if ``member`` may see it (module docstring), else None: the same
    answer for one that does not exist."""
    found = _visible_dispute_ids(
        Reader(member.pk), dispute_ids=[dispute_id], status=None, before=None, limit=1
    )
    if not found:
        return None
    return Dispute.objects.select_related("signal").get(pk=dispute_id)


def dispute_list_visible(
    *,
    member: Member,
    status: str | None = None,
    before: int | None = None,
    limit: int = DEFAULT_PAGE,
) -> tuple[list[Dispute], int | None]:
    """The newest disputes ``member`` may see (ids below ``before``), at most ``limit``,
    and the ``before`` of the next page (None when this is the last)."""
    ids = _visible_dispute_ids(
        Reader(member.pk), dispute_ids=None, status=status, before=before, limit=limit + 1
    )
    following = ids[limit - 1] if len(ids) > limit else None
    ids = ids[:limit]
    by_id = Dispute.objects.select_related("signal").in_bulk(ids)
    return [by_id[i] for i in ids], following


def dispute_view(*, dispute: Dispute, member: Member) -> dict[str, Any]:
    """The dispute as ``member`` may see it (call only for a visible one): the API's
    body and the webhook events' ``dispute``."""
    reader = Reader(member.pk)
    rows = visible_statements(
        reader=reader, signal_ids=[dispute.signal_id], include_overturned=True
    ).get(dispute.signal_id, [])
    seen_members = {r[1] for r in rows}
    party = dispute.parties.filter(member=member).exists()
    responses = [
        {"member": r.member.slug, "text": r.text, "created_at": rfc3339(r.created_at)}
        for r in DisputeResponse.objects.filter(dispute=dispute).select_related("member")
        if r.member_id == member.pk or r.member.slug in seen_members
    ]
    final = DisputeDecision.objects.filter(dispute=dispute).exclude(jws="").order_by("-id").first()
    return {
        "id": dispute.pk,
        "status": dispute.status,
        "signal_type": dispute.signal.signal_type,
        "value": dispute.signal.value,
        "grounds": dispute.grounds,
        "reason": dispute.reason,
        "proposed_labels": dispute.proposed_labels,
        "opened_by": "member" if dispute.opener_id is not None else "threshold",
        "mine": dispute.opener_id == member.pk,
        "party": party,
        "opened_at": rfc3339(dispute.opened_at),
        "decided_at": rfc3339(dispute.decided_at) if dispute.decided_at else None,
        "responses": responses,
        "decision": None
        if final is None
        else {
            "decision": final.decision,
            "labels": final.labels,
            "rationale": final.rationale,
            "decided_at": rfc3339(final.decided_at) if final.decided_at else None,
            "jws": final.jws,
        },
    }


def rfc3339(at: datetime) -> str:
    """The API's timestamps: RFC 3339, UTC, microseconds."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
