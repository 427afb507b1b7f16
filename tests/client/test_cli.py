"""The cordiale command against the fake forum, and its independence from Django."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchange.client import jws
from exchange.client.cli import main
from exchange.client.statements import load_private_key
from tests.client.fakes import MD5, PDQ, FakeForum, forum_jwk, forum_transport, jwk_for, snapshot

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORDIALE_URL", "https://forum.example")
    monkeypatch.setenv("CORDIALE_API_KEY", "key")
    monkeypatch.delenv("CORDIALE_SIGNING_KEY", raising=False)
    monkeypatch.delenv("CORDIALE_MEMBER", raising=False)


def last_json(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    out = capsys.readouterr().out
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def test_importing_the_client_does_not_load_django() -> None:
    """Members use the library and CLI without the server's settings."""
    code = (
        "import sys, exchange.client, exchange.client.cli\n"
        "assert 'django' not in sys.modules, sorted(m for m in sys.modules if 'django' in m)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)
    help_run = subprocess.run(
        [sys.executable, "-m", "exchange.client", "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "submit" in help_run.stdout


def test_keygen_writes_a_key_and_prints_its_kid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``keygen`` writes a loadable private key and prints its kid and public JWK; it refuses to
    overwrite an existing key file (exit 2)."""
    assert main(["keygen", "--out", str(tmp_path / "k.pem")]) == 0
    result = last_json(capsys)
    assert result["kid"] == result["public_jwk"]["kid"]  # type: ignore[index]
    load_private_key(tmp_path / "k.pem")
    assert main(["keygen", "--out", str(tmp_path / "k.pem")]) == 2


def test_submit_with_a_bad_row_exits_1_and_writes_the_rejected_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``submit`` sends the valid rows (values normalised before signing), exits 1, reports the
    rejection on stderr and writes the rejected rows to a file beside the input."""
    main(["keygen", "--out", str(tmp_path / "k.pem")])
    data = tmp_path / "hashes.csv"
    data.write_text(
        "signal_type,value,labels,tlp,audience\n"
        f"md5,{MD5.upper()},violent-attack,green,forum\n"
        "pdq,zz,violent-attack,green,forum\n"
    )
    forum = FakeForum()
    code = main(
        ["submit", str(data), "--signing-key", str(tmp_path / "k.pem")], transport=forum.transport()
    )
    captured = capsys.readouterr()
    assert code == 1
    assert json.loads(captured.out.splitlines()[-1]) == {
        "accepted": 1,
        "duplicate": 0,
        "stale": 0,
        "rejected": 1,
    }
    assert "rejected invalid_value: 1" in captured.err
    assert (tmp_path / "hashes.csv.rejected.csv").read_text().count("\n") == 2
    # /me told us who we are; the value was normalised before signing.
    assert forum.requests[0].url.path == "/api/v1/me"
    (token,) = forum.seen_jtis.values()
    assert jws.parse_compact(token).claims["value"] == MD5


def test_retract_prints_the_items_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``retract`` exits 0 and prints the forum's result for the retraction."""
    main(["keygen", "--out", str(tmp_path / "k.pem")])
    capsys.readouterr()
    forum = FakeForum()
    code = main(
        ["retract", "md5", MD5, "--signing-key", str(tmp_path / "k.pem"), "--member", "acme"],
        transport=forum.transport(),
    )
    assert code == 0 and last_json(capsys)["status"] == "accepted"


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ({"index": 0, "status": "stale", "signal_type": "md5", "value": MD5}, "changed nothing"),
        (
            {"index": 0, "status": "rejected", "code": "unknown_key", "detail": "no such key"},
            "retraction rejected: no such key (unknown_key)",
        ),
    ],
)
def test_retract_that_changed_nothing_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], result: dict[str, str], message: str
) -> None:
    """``stale`` and ``rejected`` retractions exit 1 and say why on stderr; the item's
    result is still printed on stdout."""
    main(["keygen", "--out", str(tmp_path / "k.pem")])
    capsys.readouterr()

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/statements"
        status = result["status"]
        counts = {"accepted": 0, "duplicate": 0, "stale": 0, "rejected": 0, status: 1}
        return httpx.Response(200, json={"results": [result], **counts})

    code = main(
        ["retract", "md5", MD5, "--signing-key", str(tmp_path / "k.pem"), "--member", "acme"],
        transport=forum_transport(handler),
    )
    captured = capsys.readouterr()
    assert code == 1
    assert message in captured.err
    assert json.loads(captured.out.splitlines()[-1])["status"] == result["status"]


def test_sync_then_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``sync`` stores the verified snapshots and the cursor; ``verify`` then verifies every stored
    statement."""
    key = Ed25519PrivateKey.generate()
    forum = FakeForum()
    forum.keys = [jwk_for(key, "acme")]
    forum.add_page([snapshot(key), snapshot(key, signal_type="pdq", value=PDQ)], has_more=False)
    state = tmp_path / "state"
    assert main(["sync", "--state", str(state)], transport=forum.transport()) == 0
    assert last_json(capsys) == {"signals": 2, "changes": 2, "cursor": "1"}
    assert main(["verify", "--state", str(state)]) == 0
    assert last_json(capsys) == {"verified": 2, "failed": 0}


def test_sync_refuses_and_reports_unverifiable_statements(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``sync`` refuses a snapshot signed by an unknown key, names it on stderr, stores nothing and
    exits 1."""
    forum = FakeForum()
    forum.add_page([snapshot(Ed25519PrivateKey.generate())], has_more=False)
    assert main(["sync", "--state", str(tmp_path)], transport=forum.transport()) == 1
    captured = capsys.readouterr()
    assert "refused: md5:" in captured.err and "unknown_key" in captured.err
    assert json.loads(captured.out.splitlines()[-1])["signals"] == 0


def test_match_type_value_queries(capsys: pytest.CaptureFixture[str]) -> None:
    """``match TYPE:VALUE`` sends normalised queries and prints how many were sent and matched."""

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        assert body["queries"] == [
            {"signal_type": "pdq", "value": PDQ},
            {"signal_type": "url", "value": "https://a.example/"},
        ]
        return httpx.Response(
            200,
            json={
                "results": [
                    {"index": 0, "matches": [{"distance": 3, "signal": {"signal_type": "pdq"}}]},
                    {"index": 1, "matches": []},
                ]
            },
        )

    code = main(
        ["match", f"pdq:{PDQ.upper()}", "url:HTTPS://A.EXAMPLE"],
        transport=forum_transport(handler),
    )
    assert code == 0 and last_json(capsys) == {"queries": 2, "matched": 1}


def test_match_hashes_image_files_locally(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``match FILE`` hashes an image locally with every type it supports (md5, sha256,
    PDQ) and sends only the hashes."""
    image_module = pytest.importorskip("PIL.Image")
    pytest.importorskip("pdqhash")
    path = tmp_path / "img.png"
    image = image_module.new("RGB", (64, 64))
    for x in range(64):
        for y in range(64):
            image.putpixel((x, y), (x * 4, y * 4, (x ^ y) * 4))
    image.save(path)
    sent = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.extend(json.loads(request.content)["queries"])
        return httpx.Response(200, json={"results": [{"index": 0, "matches": []}]})

    assert main(["match", str(path)], transport=forum_transport(handler)) == 0
    data = path.read_bytes()
    assert sent[:2] == [
        {"signal_type": "md5", "value": hashlib.md5(data, usedforsecurity=False).hexdigest()},
        {"signal_type": "sha256", "value": hashlib.sha256(data).hexdigest()},
    ]
    assert sent[2]["signal_type"] == "pdq" and len(sent[2]["value"]) == 64
    assert last_json(capsys) == {"queries": 3, "matched": 0}


def test_match_of_a_file_that_is_no_image_says_so_and_still_matches_its_bytes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A PDF (or any non-image) is matched by md5 and sha256; stderr says why there is no
    PDQ hash, and no Python class name ever stands in for an error code."""
    path = tmp_path / "leaflet.pdf"
    path.write_bytes(b"%PDF-1.4 not an image")
    sent = []

    def handler(request: httpx.Request) -> httpx.Response:
        queries = json.loads(request.content)["queries"]
        sent.extend(queries)
        return httpx.Response(
            200,
            json={
                "results": [
                    {"index": 0, "matches": [{"distance": 0, "signal": {"signal_type": "md5"}}]},
                    {"index": 1, "matches": []},
                ]
            },
        )

    assert main(["match", str(path)], transport=forum_transport(handler)) == 0
    captured = capsys.readouterr()
    assert [q["signal_type"] for q in sent] == ["md5", "sha256"]
    assert "no pdq hash" in captured.err
    assert json.loads(captured.out.splitlines()[-1]) == {"queries": 2, "matched": 1}


def test_options_go_before_or_after_the_command_and_version_is_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``cordiale --member acme --signing-key K retract ...`` works like the options after
    the command; ``--version`` prints the version and exits 0."""
    main(["keygen", "--out", str(tmp_path / "k.pem")])
    capsys.readouterr()
    forum = FakeForum()
    before = ["--signing-key", str(tmp_path / "k.pem"), "--member", "acme", "retract", "md5", MD5]
    assert main(before, transport=forum.transport()) == 0
    assert len(forum.submitted) == 1
    assert not any(r.url.path.endswith("/me") for r in forum.requests)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main_version()
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("cordiale ")


def main_version() -> None:
    """argparse's version action exits by itself; ``main`` turns that into a status."""
    from exchange.client.cli import build_parser

    build_parser().parse_args(["--version"])


def test_an_unreadable_file_is_a_snake_case_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing input file gets ``invalid_input``, never an exception's class name."""
    missing = tmp_path / "nope.csv"
    (tmp_path / "k.pem").write_text("not a key")
    assert main(["submit", str(missing), "--signing-key", str(tmp_path / "k.pem")]) == 1
    code = json.loads(capsys.readouterr().out.splitlines()[-1])["error"]["code"]
    assert code == "invalid_input"


def test_replica_list_show_and_search(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """After a sync, ``replica`` reads the local copy with no network: list with filters,
    show one signal, search by TYPE:VALUE and by a near PDQ hash."""
    key = Ed25519PrivateKey.generate()
    forum = FakeForum()
    forum.keys = [jwk_for(key, "acme")]
    forum.add_page(
        [snapshot(key), snapshot(key, signal_type="pdq", value=PDQ, labels=("recruitment",))],
        has_more=False,
    )
    state = str(tmp_path / "state")
    assert main(["sync", "--state", state], transport=forum.transport()) == 0
    capsys.readouterr()

    def run(*args: str) -> tuple[int, list[dict[str, object]]]:
        code = main(["replica", *args, "--state", state])
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        return code, lines

    code, lines = run("list")
    assert code == 0 and lines[-1] == {"signals": 2}
    assert {line["signal_type"] for line in lines[:-1]} == {"md5", "pdq"}
    assert run("list", "--label", "recruitment")[1][-1] == {"signals": 1}
    assert run("list", "--stated-by", "globex")[1][-1] == {"signals": 0}
    assert run("list", "--signal-type", "md5")[1][0]["value"] == MD5

    code, lines = run("show", "md5", MD5.upper())
    assert code == 0 and lines[-1]["signal"]["statements"][0]["member"] == "acme"  # type: ignore[index]
    assert run("show", "md5", "0" * 32)[0] == 1

    near = f"{int(PDQ, 16) ^ 0b111:064x}"
    code, lines = run("search", f"pdq:{near}", f"md5:{MD5}", "sha256:" + "0" * 64)
    assert code == 0 and lines[-1] == {"queries": 3, "matched": 2}
    assert lines[0]["matches"][0]["distance"] == 3  # type: ignore[index]
    assert run("search", f"pdq:{near}", "--max-distance", "2")[1][-1]["matched"] == 0


def test_replica_commands_without_a_replica_say_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No replica yet: a usage error naming ``cordiale sync``, and no directory created."""
    assert main(["replica", "list", "--state", str(tmp_path / "none")]) == 2
    assert "cordiale sync" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


def test_errors_are_clear_and_exit_codes_distinguish_usage(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Usage errors and a missing CORDIALE_URL exit 2 with a clear message; an error from the forum
    exits 1 and shows its detail, code and HTTP status."""
    assert main(["match", "sha1:abc"]) == 2
    assert "neither a file nor TYPE:VALUE" in capsys.readouterr().err
    monkeypatch.delenv("CORDIALE_URL")
    assert main(["webhooks", "list"]) == 2
    assert "CORDIALE_URL" in capsys.readouterr().err
    assert main(["nonsense"]) == 2
    assert main(["--help"]) == 0

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            403, json={"code": "permission_denied", "detail": "this key lacks the manage scope"}
        )

    capsys.readouterr()
    code = main(
        ["webhooks", "create", "https://h.example/", "--url", "https://f.example"],
        transport=forum_transport(handler, host="f.example"),
    )
    captured = capsys.readouterr()
    assert code == 1
    assert "this key lacks the manage scope (permission_denied, HTTP 403)" in captured.err
    assert json.loads(captured.out.splitlines()[-1])["error"]["code"] == "permission_denied"


def test_opinion_and_webhook_commands(capsys: pytest.CaptureFixture[str]) -> None:
    """The opinion and webhook commands send the expected requests (values normalised, tags split)
    and exit 0."""
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, request.content))
        if request.method == "DELETE":
            return httpx.Response(204)
        return httpx.Response(
            200,
            json={"id": 7, "url": "https://h.example/", "secret": "whsec_x"}
            if request.method == "POST"
            else [{"id": 7, "url": "https://h.example/"}]
            if request.method == "GET"
            else {"category": "negative"},
        )

    t = forum_transport(handler)
    assert (
        main(
            [
                "opinion",
                "md5",
                MD5.upper(),
                "--category",
                "negative",
                "--tags",
                "a, b",
                "--reason",
                "false positive",
            ],
            transport=t,
        )
        == 0
    )
    assert main(["opinion", "md5", MD5, "--delete"], transport=t) == 0
    assert main(["webhooks", "create", "https://h.example/", "--labels", "x,y"], transport=t) == 0
    assert last_json(capsys)["secret"] == "whsec_x"
    assert main(["webhooks", "list"], transport=t) == 0
    assert main(["webhooks", "delete", "7"], transport=t) == 0
    assert [(m, p) for m, p, _ in seen] == [
        ("PUT", f"/api/v1/opinions/md5/{MD5}"),
        ("DELETE", f"/api/v1/opinions/md5/{MD5}"),
        ("POST", "/api/v1/webhooks"),
        ("GET", "/api/v1/webhooks"),
        ("DELETE", "/api/v1/webhooks/7"),
    ]
    assert json.loads(seen[0][2]) == {
        "category": "negative",
        "tags": ["a", "b"],
        "reason": "false positive",
    }
    assert json.loads(seen[2][2]) == {"url": "https://h.example/", "labels": ["x", "y"]}


def test_webhooks_create_sends_the_api_key_to_the_forum_only(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`cordiale webhooks create URL` registers URL with the forum: every request, and so
    the API key, goes to the forum's host; the receiver's URL only travels in the body."""
    forum = FakeForum()
    seen: list[httpx.Request] = []

    def anywhere(request: httpx.Request) -> httpx.Response:
        seen.append(request)  # records every host, so that a stray request shows
        if request.url.host != forum.host:
            return httpx.Response(200, json={"id": 1, "secret": "whsec_from_the_receiver"})
        return forum.handle(request)

    code = main(
        ["webhooks", "create", "https://receiver.example/hook"],
        transport=httpx.MockTransport(anywhere),
    )
    assert [(r.url.host, r.headers["Authorization"]) for r in seen] == [
        ("forum.example", "Bearer key")
    ]
    assert code == 0
    assert json.loads(seen[0].content) == {"url": "https://receiver.example/hook"}
    assert last_json(capsys)["url"] == "https://receiver.example/hook"


def test_webhooks_rotate_secret_and_enable(capsys: pytest.CaptureFixture[str]) -> None:
    """`rotate-secret ID` prints the new secret (shown once); `enable ID` re-enables the
    endpoint; an unknown ID is the forum's 404, exit 1."""
    forum = FakeForum()
    transport = forum.transport()
    assert main(["webhooks", "create", "https://receiver.example/hook"], transport=transport) == 0
    created = last_json(capsys)
    forum.webhooks[1]["active"] = False  # disabled after failures, say
    assert main(["webhooks", "rotate-secret", "1"], transport=transport) == 0
    captured = capsys.readouterr()
    rotated = json.loads(captured.out.splitlines()[-1])
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    assert "only once" in captured.err
    assert main(["webhooks", "enable", "1"], transport=transport) == 0
    assert last_json(capsys)["active"] is True
    assert main(["webhooks", "enable", "9"], transport=transport) == 1
    assert last_json(capsys)["error"]["code"] == "not_found"  # type: ignore[index]
    assert [(r.method, r.url.path) for r in forum.requests[1:]] == [
        ("POST", "/api/v1/webhooks/1/rotate-secret"),
        ("POST", "/api/v1/webhooks/1/enable"),
        ("POST", "/api/v1/webhooks/9/enable"),
    ]


# The receipt-time rule (CONTRACT.md "Receipts"): T is when the key was compromised.
IAT = 1_764_400_000
T = IAT + 3600
T_TEXT = "2025-11-29T08:06:40Z"


def test_verify_flags_a_backdated_statement_received_after_the_compromise(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Once the forum publishes the key as revoked since T, `cordiale verify` fails the
    statement the forum received after T although it claims an iat before T, and keeps
    the one received before T."""
    key = Ed25519PrivateKey.generate()
    forum = FakeForum()
    forum.keys = [jwk_for(key, "acme")]
    honest = snapshot(key, iat=IAT, received_at=T - 60)
    backdated = snapshot(key, signal_type="pdq", value=PDQ, iat=IAT, received_at=T + 60)
    forum.add_page([honest, backdated], has_more=False)
    state = tmp_path / "state"
    assert main(["sync", "--state", str(state)], transport=forum.transport()) == 0
    capsys.readouterr()
    forum.keys = [jwk_for(key, "acme", status="revoked", revoked_at=T_TEXT)]
    assert main(["sync", "--state", str(state)], transport=forum.transport()) == 0
    capsys.readouterr()
    assert main(["verify", "--state", str(state)]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out.splitlines()[-1]) == {"verified": 1, "failed": 1}
    assert f"pdq:{PDQ} by acme" in captured.err and "withdrawn" in captured.err
    assert MD5 not in captured.err


def test_sync_refuses_a_backdated_statement_of_a_revoked_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cordiale sync` applies the same rule as it goes: the backdated statement is refused
    and reported, the one received before T is stored."""
    key = Ed25519PrivateKey.generate()
    forum = FakeForum()
    forum.keys = [jwk_for(key, "acme", status="revoked", revoked_at=T_TEXT)]
    forum.add_page(
        [
            snapshot(key, iat=IAT, received_at=T - 1),
            snapshot(key, signal_type="pdq", value=PDQ, iat=IAT - 86400, received_at=T),
        ],
        has_more=False,
    )
    assert main(["sync", "--state", str(tmp_path)], transport=forum.transport()) == 1
    captured = capsys.readouterr()
    assert f"refused: pdq:{PDQ}" in captured.err and "withdrawn" in captured.err
    assert json.loads(captured.out.splitlines()[-1])["signals"] == 1


def test_sync_refuses_a_statement_without_a_receipt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A statement the forum did not sign a receipt for is not stored."""
    key = Ed25519PrivateKey.generate()
    forum = FakeForum()
    forum.keys = [jwk_for(key, "acme")]
    bare = snapshot(key)
    del bare["statements"][0]["receipt"]
    forum.add_page([bare], has_more=False)
    assert main(["sync", "--state", str(tmp_path)], transport=forum.transport()) == 1
    assert "missing_receipt" in capsys.readouterr().err


def sync_line(
    forum: FakeForum, state: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, object], str]:
    code = main(["sync", "--state", str(state)], transport=forum.transport())
    captured = capsys.readouterr()
    return code, json.loads(captured.out.splitlines()[-1]), captured.err


def test_sync_reports_keys_added_and_removed_since_the_last_sync(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first sync pins every key silently; later ones report each new or vanished key
    once in the JSON line (exit 0), and nothing when nothing changed."""
    key, second, new_forum_key = (Ed25519PrivateKey.generate() for _ in range(3))
    forum = FakeForum()
    forum.keys = [jwk_for(key, "acme")]
    forum.add_page([snapshot(key)], has_more=False)
    code, line, _ = sync_line(forum, tmp_path, capsys)
    assert (code, line) == (0, {"signals": 1, "changes": 1, "cursor": "1"})
    forum.keys.append(jwk_for(second, "acme"))
    forum.forum_keys.append(forum_jwk(new_forum_key))
    code, line, err = sync_line(forum, tmp_path, capsys)
    assert code == 0
    assert line["key_changes"] == [
        {"change": "added", "kid": jwk_for(second, "acme")["kid"], "member": "acme"},
        {"change": "added", "kid": forum_jwk(new_forum_key)["kid"], "member": None},
    ]
    assert "key change: added" in err
    forum.keys.pop()
    code, line, _ = sync_line(forum, tmp_path, capsys)
    assert code == 0
    assert line["key_changes"] == [
        {"change": "removed", "kid": jwk_for(second, "acme")["kid"], "member": "acme"}
    ]
    code, line, _ = sync_line(forum, tmp_path, capsys)
    assert (code, "key_changes" in line) == (0, False)


def test_a_kid_rebound_to_another_member_is_a_hard_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A JWKS that hands acme's pinned kid to globex fails sync and verify; statements the
    key makes as globex are refused, and acme's stay acme's."""
    key = Ed25519PrivateKey.generate()
    forum = FakeForum()
    forum.keys = [jwk_for(key, "acme")]
    forum.add_page([snapshot(key)], has_more=False)
    assert sync_line(forum, tmp_path, capsys)[0] == 0
    forum.keys = [jwk_for(key, "globex")]
    forum.add_page([snapshot(key, member="globex", value="1" * 32)], has_more=False)
    code, line, err = sync_line(forum, tmp_path, capsys)
    kid = jwk_for(key, "acme")["kid"]
    assert code == 1
    assert line["key_changes"] == [{"change": "rebound", "kid": kid, "member": "acme"}]
    assert "KEY FAILURE: rebound" in err and "refused: md5:" + "1" * 32 in err
    assert line["signals"] == 1
    assert main(["verify", "--state", str(tmp_path)]) == 1
    line = last_json(capsys)
    assert (line["verified"], line["failed"], line["key_changes"]) == (
        1,
        0,
        [{"change": "rebound", "kid": kid, "member": "acme"}],
    )


def test_the_forum_key_is_pinned_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The forum's kid republished as a member's key cannot make that member's receipts."""
    key = Ed25519PrivateKey.generate()
    forum = FakeForum()
    forum.keys = [jwk_for(key, "acme")]
    forum.add_page([snapshot(key)], has_more=False)
    assert sync_line(forum, tmp_path, capsys)[0] == 0
    forum.forum_keys = [{**forum_jwk(), "forum": False, "member": "globex"}]
    forum.forum_keys[0].pop("forum")
    code, line, _ = sync_line(forum, tmp_path, capsys)
    assert code == 1
    assert line["key_changes"] == [{"change": "rebound", "kid": forum_jwk()["kid"], "member": None}]


def test_an_x_changed_under_a_pinned_kid_is_a_hard_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A JWKS entry whose kid is not the thumbprint of its x is left out and fails the sync:
    statements signed with the substituted key are refused."""
    key, thief = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    forum = FakeForum()
    forum.keys = [jwk_for(key, "acme")]
    forum.add_page([snapshot(key)], has_more=False)
    assert sync_line(forum, tmp_path, capsys)[0] == 0
    kid = jwk_for(key, "acme")["kid"]
    forum.keys = [{**jwk_for(thief, "acme"), "kid": kid}]
    forged = snapshot(thief, value="2" * 32)
    forged["statements"][0]["kid"] = kid
    forum.add_page([forged], has_more=False)
    code, line, err = sync_line(forum, tmp_path, capsys)
    assert code == 1
    assert line["key_changes"] == [{"change": "bad_kid", "kid": kid, "member": "acme"}]
    assert "thumbprint" in err and "refused: md5:" + "2" * 32 in err


def test_no_command_argument_shares_a_destination_with_a_connection_option() -> None:
    """A positional argument stored under ``url`` (or ``api_key``...) would silently
    replace the connection setting of the same name, as `webhooks create URL` once did."""
    from exchange.client.cli import build_parser

    def parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
        found = [parser]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    found += parsers(child)
        return found

    connection = {"url", "api_key", "signing_key", "member", "timeout", "max_retries", "progress"}
    for parser in parsers(build_parser()):
        option_dests = {a.dest for a in parser._actions if a.option_strings}
        positional_dests = {a.dest for a in parser._actions if not a.option_strings}
        assert not positional_dests & (connection | option_dests), parser.prog


def test_a_removed_kid_cannot_come_back_under_another_member(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Removing a key for one sync does not clear its pin: republished as globex's it is a
    rebound (exit 1); republished as acme's it is reported as added again (exit 0)."""
    key = Ed25519PrivateKey.generate()
    forum = FakeForum()
    forum.keys = [jwk_for(key, "acme")]
    forum.add_page([snapshot(key)], has_more=False)
    assert sync_line(forum, tmp_path, capsys)[0] == 0
    forum.keys = []
    assert sync_line(forum, tmp_path, capsys)[1]["key_changes"][0]["change"] == "removed"  # type: ignore[index]
    forum.keys = [jwk_for(key, "globex")]
    code, line, _ = sync_line(forum, tmp_path, capsys)
    assert (code, line["key_changes"]) == (
        1,
        [{"change": "rebound", "kid": jwk_for(key, "acme")["kid"], "member": "acme"}],
    )
    forum.keys = [jwk_for(key, "acme")]
    code, line, _ = sync_line(forum, tmp_path, capsys)
    assert (code, line["key_changes"]) == (
        0,
        [{"change": "added", "kid": jwk_for(key, "acme")["kid"], "member": "acme"}],
    )


def test_a_revocation_cannot_be_taken_back_by_a_later_jwks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Once the replica has seen a key revoked since T, a JWKS showing it active again (or
    revoked only later) fails sync and verify, and the statement the forum received after
    T stays withdrawn."""
    key = Ed25519PrivateKey.generate()
    kid = jwk_for(key, "acme")["kid"]
    forum = FakeForum()
    forum.keys = [jwk_for(key, "acme")]
    backdated = snapshot(key, signal_type="pdq", value=PDQ, iat=IAT, received_at=T + 60)
    forum.add_page([snapshot(key, iat=IAT, received_at=T - 60), backdated], has_more=False)
    assert sync_line(forum, tmp_path, capsys)[0] == 0
    forum.keys = [jwk_for(key, "acme", status="revoked", revoked_at=T_TEXT)]
    code, line, _ = sync_line(forum, tmp_path, capsys)
    assert (code, line["key_changes"]) == (
        0,
        [{"change": "revoked", "kid": kid, "member": "acme"}],
    )
    for hiding in (
        jwk_for(key, "acme"),
        jwk_for(key, "acme", status="revoked", revoked_at="2025-11-29T09:00:00Z"),
    ):
        forum.keys = [hiding]
        code, line, err = sync_line(forum, tmp_path, capsys)
        assert "KEY FAILURE: unrevoked" in err
        assert (code, line["key_changes"]) == (
            1,
            [{"change": "unrevoked", "kid": kid, "member": "acme"}],
        )
        assert main(["verify", "--state", str(tmp_path)]) == 1
        captured = capsys.readouterr()
        line = json.loads(captured.out.splitlines()[-1])
        assert (line["verified"], line["failed"]) == (1, 1)
        assert f"pdq:{PDQ} by acme" in captured.err and "withdrawn" in captured.err
