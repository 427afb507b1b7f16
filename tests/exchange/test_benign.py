"""The known-benign list over HTTP: benign assertions, mixed kinds refused, /match
returning benign neighbours apart and flagging TVEC matches near them, and the same
visibility rules as every statement (issue #18, part 3)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from exchange.matching.service import match_index_reset
from exchange.models import Label, Statement
from exchange.services.labels import label_save
from forum.errors import DomainError
from tests.factories import (
    ACTOR,
    Party,
    make_group,
    make_party,
    make_staff,
    pdq,
    random_hex,
    verified_admin_client,
)

pytestmark = pytest.mark.django_db

BENIGN = ["news-reporting", "counter-speech", "satire", "benign-other"]


@pytest.fixture(autouse=True)
def fresh_index(tmp_path: Path) -> Iterator[None]:
    """Each test starts with no match index in the process and its own snapshot dir."""
    match_index_reset()
    with override_settings(CORDIALE_MATCH_INDEX_DIR=tmp_path / "match-index"):
        yield
    match_index_reset()


def flipped(value: str, bits: range) -> str:
    """``value`` with the given bit positions inverted (Hamming distance ``len(bits)``)."""
    mask = sum(1 << b for b in bits)
    return f"{int(value, 16) ^ mask:064x}"


def match(party: Party, *queries: tuple[str, str], **options: Any) -> list[dict[str, Any]]:
    body = {"queries": [{"signal_type": t, "value": v} for t, v in queries], **options}
    response = party.client.post("/api/v1/match", body, format="json")
    assert response.status_code == 200, response.content
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def pairs(entries: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return [(e["distance"], e["signal"]["value"]) for e in entries]


def accepted(party: Party, *tokens: str) -> None:
    body = party.submit(*tokens)
    assert body["accepted"] == len(tokens), body


def test_labels_list_the_benign_kind() -> None:
    """GET /api/v1/labels lists the default benign labels with kind ``benign``."""
    acme = make_party()
    labels = {label["slug"]: label for label in acme.get("/api/v1/labels").json()}
    assert {slug: labels[slug]["kind"] for slug in BENIGN} == dict.fromkeys(BENIGN, "benign")
    assert labels["recruitment"]["kind"] != "benign"


def test_benign_assertion_is_a_signed_statement_marked_benign() -> None:
    """A statement with benign labels is accepted like any other; its snapshot says so,
    per statement and for the signal, and it carries the member's bytes verbatim."""
    acme, globex = make_party(), make_party()
    value = pdq()
    token = acme.statement("pdq", value, labels=["news-reporting", "satire"])
    accepted(acme, token)
    snapshot = globex.get(f"/api/v1/signals/pdq/{value}").json()
    assert snapshot["benign"] is True
    (statement,) = snapshot["statements"]
    assert statement["benign"] is True and statement["jws"] == token
    assert statement["labels"] == ["news-reporting", "satire"]
    assert Statement.objects.get(jws=token).benign is True


def test_mixed_label_kinds_reject_that_item_only() -> None:
    """Benign and TVEC labels in one statement: that item is rejected
    ``mixed_label_kinds`` and nothing of it is stored; the rest of the batch goes in."""
    acme = make_party()
    mixed, tvec, benign = pdq(), pdq(), pdq()
    body = acme.submit(
        acme.statement("pdq", mixed, labels=["recruitment", "news-reporting"]),
        acme.statement("pdq", tvec, labels=["recruitment"]),
        acme.statement("pdq", benign, labels=["counter-speech"]),
    )
    assert [r["status"] for r in body["results"]] == ["rejected", "accepted", "accepted"]
    assert body["results"][0]["code"] == "mixed_label_kinds"
    assert "news-reporting" in body["results"][0]["detail"]
    assert not Statement.objects.filter(signal__value=mixed).exists()
    assert acme.get(f"/api/v1/signals/pdq/{mixed}").status_code == 404
    assert Statement.objects.get(signal__value=tvec).benign is False


def test_signal_with_both_kinds_is_not_benign() -> None:
    """One member's TVEC statement and another's benign one: the snapshot marks each
    statement, and the signal is not benign (not all of them say so)."""
    acme, globex = make_party(), make_party()
    value = random_hex(32)
    accepted(acme, acme.statement("md5", value))
    accepted(globex, globex.statement("md5", value, labels=["news-reporting"]))
    snapshot = acme.get(f"/api/v1/signals/md5/{value}").json()
    assert snapshot["benign"] is False
    assert {s["member"]: s["benign"] for s in snapshot["statements"]} == {
        acme.slug: False,
        globex.slug: True,
    }


def test_match_returns_benign_neighbours_apart_and_flags_near_ones() -> None:
    """A PDQ query near a TVEC value T (3 bits), a benign value B (8 bits, 5 from T) and
    a TVEC value F (28 bits, 36 from B): B is in ``benign`` only; T is a match flagged
    ``near_benign``, F a match not flagged."""
    acme, globex, initech = make_party(), make_party(), make_party()
    query = pdq()
    tvec = flipped(query, range(0, 3))
    benign = flipped(tvec, range(200, 205))
    far = flipped(query, range(100, 128))
    accepted(acme, acme.statement("pdq", tvec), acme.statement("pdq", far))
    accepted(globex, globex.statement("pdq", benign, labels=["news-reporting"]))
    (result,) = match(initech, ("pdq", query))
    assert pairs(result["matches"]) == [(3, tvec), (28, far)]
    assert [m["near_benign"] for m in result["matches"]] == [True, False]
    assert pairs(result["benign"]) == [(8, benign)]
    assert result["benign"][0]["signal"]["benign"] is True
    # At a threshold that leaves B out, nothing is near it.
    (result,) = match(initech, ("pdq", query), max_distance=5)
    assert pairs(result["matches"]) == [(3, tvec)] and result["benign"] == []
    assert result["matches"][0]["near_benign"] is False


def test_exact_types_benign_only_is_never_a_match() -> None:
    """An md5 asserted only benign is a benign neighbour, not a match; one asserted both
    TVEC and benign (by two members) is a match flagged near_benign and a neighbour."""
    acme, globex, initech = make_party(), make_party(), make_party()
    only_benign, both = random_hex(32), random_hex(32)
    accepted(globex, globex.statement("md5", only_benign, labels=["satire"]))
    accepted(acme, acme.statement("md5", both))
    accepted(globex, globex.statement("md5", both, labels=["counter-speech"]))
    first, second = match(initech, ("md5", only_benign), ("md5", both))
    assert first["matches"] == [] and pairs(first["benign"]) == [(0, only_benign)]
    assert pairs(second["matches"]) == [(0, both)] and pairs(second["benign"]) == [(0, both)]
    assert second["matches"][0]["near_benign"] is True


def test_retracting_the_benign_statement_unflags_the_match() -> None:
    """Once the benign statement is retracted, the value is an ordinary match again."""
    acme, globex = make_party(), make_party()
    value = random_hex(64)
    accepted(acme, acme.statement("sha256", value))
    accepted(
        globex,
        globex.statement("sha256", value, labels=["news-reporting"], iat=int(time.time()) - 60),
    )
    (before,) = match(acme, ("sha256", value))
    assert before["matches"][0]["near_benign"] is True
    accepted(globex, globex.statement("sha256", value, op="retract"))
    (after,) = match(acme, ("sha256", value))
    assert after["matches"][0]["near_benign"] is False and after["benign"] == []


def test_group_benign_statement_is_seen_by_group_members_only() -> None:
    """A benign statement addressed to a group: its members get it as a benign
    neighbour and see the TVEC match flagged; an outsider sees neither the value, the
    flag, nor the statement, on /match, lookup or the feed."""
    acme, globex, outsider = make_party(), make_party(), make_party()
    make_group("benign-circle", acme, globex)
    query = pdq()
    tvec = flipped(query, range(0, 2))
    benign = flipped(query, range(40, 44))
    shared = random_hex(32)  # TVEC to the forum, benign to the group
    accepted(acme, acme.statement("pdq", tvec), acme.statement("md5", shared))
    group = {"labels": ["counter-speech"], "audience": "group:benign-circle"}
    accepted(
        globex,
        globex.statement("pdq", benign, **group),
        globex.statement("md5", shared, **group),
    )

    near, exact = match(acme, ("pdq", query), ("md5", shared))
    assert pairs(near["benign"]) == [(4, benign)] and near["matches"][0]["near_benign"]
    assert exact["matches"][0]["near_benign"] and pairs(exact["benign"]) == [(0, shared)]

    near, exact = match(outsider, ("pdq", query), ("md5", shared))
    assert near["benign"] == [] and near["matches"][0]["near_benign"] is False
    assert exact["benign"] == [] and exact["matches"][0]["near_benign"] is False
    (statement,) = exact["matches"][0]["signal"]["statements"]
    assert statement["member"] == acme.slug and exact["matches"][0]["signal"]["benign"] is False
    assert outsider.get(f"/api/v1/signals/pdq/{benign}").status_code == 404
    feed = outsider.get("/api/v1/changes").content.decode()
    assert benign not in feed and globex.slug not in feed and tvec in feed


def test_limit_counts_neighbours_of_both_kinds() -> None:
    """``limit`` is over neighbours, closest first: benign ones take their place, and
    ``truncated`` says more exist."""
    acme, globex = make_party(), make_party()
    query = pdq()
    benign = flipped(query, range(0, 1))
    tvec = flipped(query, range(0, 2))
    accepted(globex, globex.statement("pdq", benign, labels=["satire"]))
    accepted(acme, acme.statement("pdq", tvec))
    (one,) = match(acme, ("pdq", query), limit=1)
    assert one["matches"] == [] and pairs(one["benign"]) == [(1, benign)] and one["truncated"]
    (two,) = match(acme, ("pdq", query), limit=2)
    assert pairs(two["matches"]) == [(2, tvec)] and not two["truncated"]


def test_a_label_never_changes_side() -> None:
    """A benign label cannot become a TVEC kind, nor a TVEC label benign
    (``label_kind_fixed``); other kind changes stay allowed."""
    satire = Label.objects.get(slug="satire")
    satire.kind = Label.Kind.CONTENT
    with pytest.raises(DomainError) as raised:
        label_save(label=satire, actor=ACTOR)
    assert raised.value.code == "label_kind_fixed"
    recruitment = Label.objects.get(slug="recruitment")
    recruitment.kind = Label.Kind.BENIGN
    with pytest.raises(DomainError):
        label_save(label=recruitment, actor=ACTOR)
    recruitment.kind = Label.Kind.CONTENT
    label_save(label=recruitment, actor=ACTOR)
    assert Label.objects.get(slug="recruitment").kind == Label.Kind.CONTENT
    assert Label.objects.get(slug="satire").kind == Label.Kind.BENIGN


def test_admin_refuses_moving_a_label_across_sides() -> None:
    """The label admin shows ``label_kind_fixed``'s reason on the kind field instead of
    saving a benign label as a TVEC kind; the label is unchanged."""
    client = verified_admin_client(*make_staff())
    satire = Label.objects.get(slug="satire")
    form = {"name": satire.name, "kind": "content", "description": "x", "active": "on"}
    response = client.post(f"/admin/exchange/label/{satire.pk}/change/", form)
    assert response.status_code == 200
    assert "cannot move between" in response.content.decode()
    assert Label.objects.get(slug="satire").kind == Label.Kind.BENIGN
