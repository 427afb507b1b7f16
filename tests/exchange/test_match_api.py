"""POST /api/v1/match end to end: statements go in through the API, queries through HTTP.

Every PDQ answer is compared with brute force over the values the caller may see.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from exchange.models import Signal
from tests.exchange import match_support
from tests.factories import Party, make_group, make_party, pdq, random_hex

# The /match tests' shared fixtures: a fresh index per test (autouse), both search paths.
fresh_index = match_support.fresh_index
search_path = match_support.search_path

pytestmark = pytest.mark.django_db

U8 = npt.NDArray[np.uint8]
PLANTED = range(33)  # a neighbour of each query at every distance 0..32


def match(party: Party, queries: list[dict[str, str]], **options: Any) -> Any:
    response = party.client.post("/api/v1/match", {"queries": queries, **options}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def flip(rng: np.random.Generator, value: U8, distance: int) -> U8:
    bits = np.unpackbits(value)
    bits[rng.choice(256, size=distance, replace=False)] ^= 1
    return np.packbits(bits)


def to_hex(value: U8) -> str:
    return bytes(value).hex()


def distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def submit_all(party: Party, signal_type: str, values: list[str], **claims: Any) -> None:
    iat = int(time.time()) - 60
    tokens = [party.statement(signal_type, v, iat=iat, **claims) for v in values]
    assert party.submit(*tokens)["accepted"] == len(values)


def got(result: dict[str, Any]) -> list[tuple[int, str]]:
    return [(m["distance"], m["signal"]["value"]) for m in result["matches"]]


def brute_force(values: list[str], query: str, max_distance: int) -> list[tuple[int, str]]:
    ids = dict(Signal.objects.filter(value__in=values).values_list("value", "id"))
    near = [(distance(query, v), v) for v in values]
    return sorted(((d, v) for d, v in near if d <= max_distance), key=lambda m: (m[0], ids[m[1]]))


def test_pdq_results_equal_brute_force(search_path: str) -> None:
    """Every value within max_distance is found with its exact distance, closest first
    (ties by signal id); nothing beyond it, for 31 and other thresholds."""
    rng = np.random.default_rng(7)
    acme, globex = make_party(), make_party()
    queries = rng.integers(0, 256, size=(4, 32), dtype=np.uint8)
    values = [to_hex(v) for v in rng.integers(0, 256, size=(400, 32), dtype=np.uint8)]
    values += [to_hex(flip(rng, q, d)) for q in queries for d in PLANTED]
    values = list(dict.fromkeys(values))
    submit_all(acme, "pdq", values)
    query_hex = [to_hex(q) for q in queries]
    for max_distance in (31, 0, 1, 15, 16, 32, 47, 64):
        body = match(
            globex,
            [{"signal_type": "pdq", "value": q} for q in query_hex],
            max_distance=max_distance,
        )
        assert [r["index"] for r in body["results"]] == list(range(len(queries)))
        for q, result in zip(query_hex, body["results"], strict=True):
            expected = brute_force(values, q, max_distance)
            assert got(result) == expected, (max_distance, q)
            assert result["truncated"] is False
            assert all(d <= max_distance for d, _ in got(result))
    # The default threshold is PDQ's 31.
    default = match(globex, [{"signal_type": "pdq", "value": query_hex[0]}])
    assert got(default["results"][0]) == brute_force(values, query_hex[0], 31)


def test_snapshot_in_match_is_the_signal_snapshot() -> None:
    """A match carries the same snapshot as GET /signals, signed statement included."""
    acme, globex = make_party(), make_party()
    value = pdq()
    token = acme.statement("pdq", value)
    acme.submit(token)
    (result,) = match(globex, [{"signal_type": "pdq", "value": value}])["results"]
    looked = globex.get(f"/api/v1/signals/pdq/{value}").json()
    assert result["matches"] == [{"distance": 0, "signal": looked, "near_benign": False}]
    assert result["matches"][0]["signal"]["statements"][0]["jws"] == token


def test_limit_applies_after_visibility() -> None:
    """The closest visible matches fill the limit even when closer ones are invisible."""
    rng = np.random.default_rng(11)
    acme, globex, initech = make_party(), make_party(), make_party()
    make_group("acme-initech", acme, initech)
    query = rng.integers(0, 256, size=32, dtype=np.uint8)
    hidden = [to_hex(flip(rng, query, d)) for d in range(0, 10)]
    shown = [to_hex(flip(rng, query, d)) for d in range(10, 20)]
    submit_all(acme, "pdq", hidden, audience="group:acme-initech")
    submit_all(acme, "pdq", shown)
    body = match(globex, [{"signal_type": "pdq", "value": to_hex(query)}], limit=3)
    assert got(body["results"][0]) == [(10, shown[0]), (11, shown[1]), (12, shown[2])]
    assert body["results"][0]["truncated"] is True
    body = match(globex, [{"signal_type": "pdq", "value": to_hex(query)}], limit=10)
    assert len(body["results"][0]["matches"]) == 10
    assert body["results"][0]["truncated"] is False
    assert got(
        match(initech, [{"signal_type": "pdq", "value": to_hex(query)}], limit=3)["results"][0]
    ) == [(0, hidden[0]), (1, hidden[1]), (2, hidden[2])]


def test_invisible_values_look_like_no_match() -> None:
    """Values in another member's group, retracted or lapsed ones are never returned, and
    the answer is byte for byte the one for a value near nothing."""
    rng = np.random.default_rng(3)
    acme, globex, initech = make_party(), make_party(), make_party()
    make_group("acme-initech", acme, initech)
    near_hidden = rng.integers(0, 256, size=32, dtype=np.uint8)
    near_retracted = rng.integers(0, 256, size=32, dtype=np.uint8)
    near_lapsed = rng.integers(0, 256, size=32, dtype=np.uint8)
    nothing = rng.integers(0, 256, size=32, dtype=np.uint8)
    hidden = [to_hex(flip(rng, near_hidden, d)) for d in (0, 5, 31)]
    submit_all(acme, "pdq", hidden, audience="group:acme-initech")
    md5 = random_hex(32)
    submit_all(acme, "md5", [md5], audience="group:acme-initech")
    retracted = to_hex(flip(rng, near_retracted, 4))
    now = int(time.time())
    acme.submit(acme.statement("pdq", retracted, iat=now - 10))
    acme.submit(acme.statement("pdq", retracted, op="retract", iat=now - 5))
    lapsed = to_hex(flip(rng, near_lapsed, 2))
    acme.submit(acme.statement("pdq", lapsed, iat=now - 10, exp=now + 1))
    time.sleep(1.2)  # the sweep has not run: the lapse is not in the feed yet

    def answer(query: U8 | str, signal_type: str = "pdq") -> bytes:
        value = query if isinstance(query, str) else to_hex(query)
        body = {"queries": [{"signal_type": signal_type, "value": value}]}
        response = globex.client.post("/api/v1/match", body, format="json")
        assert response.status_code == 200
        return response.content

    empty = answer(nothing)
    assert json.loads(empty) == {
        "results": [{"index": 0, "truncated": False, "matches": [], "benign": []}]
    }
    assert answer(near_hidden) == empty
    assert answer(hidden[0]) == empty
    assert answer(near_retracted) == empty
    assert answer(near_lapsed) == empty
    assert answer(md5, "md5") == empty
    assert answer(random_hex(32), "md5") == empty
    # The group's members do see them.
    body = match(initech, [{"signal_type": "pdq", "value": to_hex(near_hidden)}])
    assert sorted(got(body["results"][0])) == sorted(
        (distance(to_hex(near_hidden), v), v) for v in hidden
    )
    assert got(match(initech, [{"signal_type": "md5", "value": md5}])["results"][0]) == [(0, md5)]


def test_exact_types_match_by_equality() -> None:
    """md5, sha256 and url match their exact canonical value at distance 0, nothing else."""
    acme, globex = make_party(), make_party()
    md5, sha = random_hex(32), random_hex(64)
    url = "https://example.com/watch?v=abc"
    acme.submit(
        acme.statement("md5", md5), acme.statement("sha256", sha), acme.statement("url", url)
    )
    body = match(
        globex,
        [
            {"signal_type": "md5", "value": md5},
            {"signal_type": "sha256", "value": sha},
            {"signal_type": "url", "value": url},
            {"signal_type": "md5", "value": md5[:-1] + ("0" if md5[-1] != "0" else "1")},
            {"signal_type": "url", "value": "https://example.com/watch?v=abd"},
            {"signal_type": "sha256", "value": md5 * 2},
        ],
        max_distance=64,
    )
    assert [got(r) for r in body["results"]] == [[(0, md5)], [(0, sha)], [(0, url)], [], [], []]


def vpdq(*hashes: str) -> str:
    return json.dumps([f"{h},100,{float(i):.3}" for i, h in enumerate(hashes)])


def test_vpdq_matches_by_frames() -> None:
    """A pdq query finds a video by its closest frame; a vpdq query with both thresholds
    at 0 (the frame-level answer) finds images and videos sharing a frame, at the
    distance of the closest pair of frames; at the default thresholds, an image near
    one of two query frames (50 %) is no match for the video query."""
    rng = np.random.default_rng(5)
    acme, globex = make_party(), make_party()
    base = [rng.integers(0, 256, size=32, dtype=np.uint8) for _ in range(3)]
    video = vpdq(*(to_hex(flip(rng, b, 3 + i)) for i, b in enumerate(base)))
    image = to_hex(flip(rng, base[2], 20))
    far = vpdq(to_hex(rng.integers(0, 256, size=32, dtype=np.uint8)))
    acme.submit(acme.statement("vpdq", video), acme.statement("pdq", image))
    acme.submit(acme.statement("vpdq", far))
    body = match(
        globex,
        [
            {"signal_type": "pdq", "value": to_hex(base[1])},
            {"signal_type": "vpdq", "value": vpdq(to_hex(base[2]), to_hex(base[0]))},
            {"signal_type": "vpdq", "value": video},
        ],
        vpdq_query_match_percent=0,
        vpdq_compared_match_percent=0,
    )
    assert got(body["results"][0]) == [(4, video)]
    assert got(body["results"][1]) == [(3, video), (20, image)]
    assert got(body["results"][2])[0] == (0, video)
    two_frames = {"signal_type": "vpdq", "value": vpdq(to_hex(base[2]), to_hex(base[0]))}
    assert got(match(globex, [two_frames])["results"][0]) == [(3, video)]


def problem(party: Party, body: Any, status: int = 400) -> dict[str, Any]:
    response = party.client.post("/api/v1/match", body, format="json")
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    data: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail", "code"} <= set(data)
    return data


def test_malformed_requests_are_problems() -> None:
    """A request that is not a list of 1..1,000 queries with a valid max_distance and
    limit gets a problem naming the field."""
    globex = make_party()
    q = {"signal_type": "pdq", "value": pdq()}
    assert problem(globex, {"queries": []})["errors"][0]["field"] == "queries"
    assert problem(globex, {"query": [q]})["code"] == "invalid_request"
    assert problem(globex, [q])["code"] == "invalid_request"
    assert problem(globex, {"queries": [q] * 1001}, 413)["code"] == "too_many_queries"
    for bad in (-1, 65, "31", 3.5, True, None):
        data = problem(globex, {"queries": [q], "max_distance": bad})
        assert data["code"] == "invalid_max_distance"
        assert data["errors"][0]["field"] == "max_distance"
    assert problem(globex, {"queries": [q], "limit": 0})["code"] == "invalid_limit"
    response = globex.client.post("/api/v1/match", "{nope", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"


def test_one_bad_query_rejects_that_query_only() -> None:
    """Unknown types, non-canonical values and non-objects get a per-query error; the
    other queries of the request are answered."""
    acme, globex = make_party(), make_party()
    value = pdq()
    acme.submit(acme.statement("pdq", value))
    body = match(
        globex,
        [
            {"signal_type": "pdq", "value": value.upper()},
            {"signal_type": "pdq", "value": value},
            {"signal_type": "tlsh", "value": value},
            "pdq:" + value,
            {"signal_type": "url", "value": "HTTPS://Example.com"},
            {"signal_type": "vpdq", "value": "[]"},
        ],
    )
    errors = [r.get("error", {}).get("code") for r in body["results"]]
    assert errors == [
        "invalid_value",
        None,
        "unknown_signal_type",
        "invalid_query",
        "invalid_value",
        "invalid_value",
    ]
    assert got(body["results"][1]) == [(0, value)]
    assert all(r["matches"] == [] for i, r in enumerate(body["results"]) if i != 1)
    assert "lowercase" in body["results"][0]["error"]["detail"]


def test_match_needs_the_read_scope() -> None:
    """Keys without the read scope get 403; no key gets 401."""
    submitter = make_party(scopes=["submit"])
    q = {"queries": [{"signal_type": "pdq", "value": pdq()}]}
    assert submitter.client.post("/api/v1/match", q, format="json").status_code == 403
    from rest_framework.test import APIClient

    assert APIClient().post("/api/v1/match", q, format="json").status_code == 401
