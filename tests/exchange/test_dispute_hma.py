"""An overturned signal through the python-threatexchange extension HMA drives: the
dispute makes it ``disputed`` (a ``DropPolicy.DISPUTED`` collaboration leaves it out),
and the overturn is a deletion at the next fetch from the stored checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from threatexchange.exchanges import fetch_state as state
from threatexchange.signal_type.pdq.signal import PdqSignal

from exchange.client import CordialeClient
from exchange.client.threatexchange import (
    CordialeCheckpoint,
    CordialeCollabConfig,
    CordialeCredentials,
    CordialeSignalExchangeAPI,
    CordialeSignalMetadata,
    DropPolicy,
)
from exchange.disputes.services import dispute_decide
from exchange.models import Dispute
from tests.client.test_threatexchange_live import send
from tests.factories import pdq
from tests.support.live_server import LiveForum, LiveMember

Fetched = dict[tuple[str, str], CordialeSignalMetadata]


def api(forum: LiveForum, member: LiveMember, drop: DropPolicy) -> CordialeSignalExchangeAPI:
    collab = CordialeCollabConfig(name="forum", server_url=forum.url, drop=drop)
    return CordialeSignalExchangeAPI.for_collab(collab, CordialeCredentials(member.api_key))


def fetch(
    exchange: CordialeSignalExchangeAPI, fetched: Fetched, checkpoint: CordialeCheckpoint | None
) -> CordialeCheckpoint | None:
    for delta in exchange.fetch_iter([PdqSignal], checkpoint):
        exchange.naive_fetch_merge(fetched, delta.updates)  # type: ignore[arg-type]
        checkpoint = delta.checkpoint
    return checkpoint


@pytest.mark.slow
def test_the_extension_drops_a_disputed_signal_and_deletes_an_overturned_one(
    forum: LiveForum, tmp_path: Path, settings: Any
) -> None:
    """While the dispute is open the signal is DISPUTED for pytx; after the overturn a
    fetch from the checkpoint deletes it, and the other signal stays."""
    acme = forum.member("acme", tmp_path)
    globex = forum.member("globex", tmp_path)
    challenged, kept = pdq(), pdq()
    send(acme, "pdq", challenged)
    send(acme, "pdq", kept)
    fetched: Fetched = {}
    checkpoint = fetch(api(forum, globex, DropPolicy.NONE), fetched, None)
    assert set(fetched) == {("pdq", challenged), ("pdq", kept)}

    with CordialeClient(forum.url, globex.api_key) as client:
        opened = client.open_dispute("pdq", challenged, grounds="not_tvec", reason="A meme.")
    checkpoint = fetch(api(forum, globex, DropPolicy.NONE), fetched, checkpoint)
    aggregate = fetched[("pdq", challenged)].get_as_aggregate_opinion()
    assert aggregate.category == state.AggregateSignalOpinionCategory.DISPUTED
    dropping: Fetched = {}
    fetch(api(forum, globex, DropPolicy.DISPUTED), dropping, None)
    assert set(dropping) == {("pdq", kept)}

    settings.CORDIALE_DISPUTE_OVERTURN_APPROVALS = 1
    dispute_decide(
        dispute=Dispute.objects.get(pk=opened["id"]),
        decision="overturn",
        rationale="A meme.",
        staff_user=None,
    )
    fetch(api(forum, globex, DropPolicy.NONE), fetched, checkpoint)
    assert set(fetched) == {("pdq", kept)}
