"""Every code example of README.md and docs/*.md parses, runs or matches the real thing.

Members only ever read the repository's documentation, so an example that drifted from
the code is a bug they would copy. Each fenced block is checked by its info string:

- ``json``: parses; a problem document's ``type`` ends with its ``code``; a block tagged
  ``jsonl`` is also read by the client's own input reader and turned into claims; blocks
  tagged ``wire=statement-*`` (the worked example of docs/api.md) are checked against each
  other, the RFC 8037 key they claim, and a real forum, which must accept the token and
  serve it back byte for byte;
- ``csv``: read by ``cordiale submit``'s reader, every row turned into valid claims;
- ``python``: executed. Blocks that read ``CORDIALE_URL`` run against a live test forum
  (a member with an approved key and one statement), as a member's script would; others
  run with the test database. A block's ``fixture=NAME`` gives it the names it assumes
  (``webhook-delivery``: a genuinely signed delivery as ``secret``, ``headers``,
  ``raw_body``);
- ``sh`` and ``console``: ``bash -n`` accepts them, and every ``cordiale`` and
  ``manage.py`` command line in them parses with the real argument parsers;
- ``http``: the body parses as JSON;
- ``text``: output or a diagram, nothing to run.

A block marked ``no-test`` in its info string is deliberately not run (it needs something
outside this repository, such as HMA); Python ones are still compiled and their imports
from this project resolved. The terminal summary counts the blocks of each kind.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, get_commands, load_command_class

from exchange.client import CordialeClient, build_statement, jws, sign_statement
from exchange.client.cli import build_parser
from exchange.client.submission import read_rows, row_claims
from tests.support.live_server import LiveForum

ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PROBLEM_PREFIX = "https://cordiale.example/problems/"
CHECKED = {"json", "python", "sh", "console", "http", "csv"}
NOTHING_TO_RUN = {"text"}

# RFC 8037 appendix A.1: a published Ed25519 test key, public half and thumbprint.
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_KID = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")

# What the terminal summary reports (tests/docs/conftest.py).
SUMMARY: Counter[str] = Counter()


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its info string and its text."""

    path: Path
    line: int
    lang: str
    words: frozenset[str]
    attrs: dict[str, str] = field(hash=False)
    text: str

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def no_test(self) -> bool:
        return "no-test" in self.words


def parse_blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, dedented by their fence's indentation."""
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        info = opening["info"].split()
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            closing = FENCE.match(lines[j])
            if (
                closing
                and closing["fence"][0] == fence[0]
                and len(closing["fence"]) >= len(fence)
                and not closing["info"].strip()
            ):
                break
            line = lines[j]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            j += 1
        assert j < len(lines), f"{path.name}:{i + 1}: a code block is never closed"
        attrs = dict(word.split("=", 1) for word in info[1:] if "=" in word)
        blocks.append(
            Block(
                path=path,
                line=i + 1,
                lang=info[0] if info else "",
                words=frozenset(info[1:]),
                attrs=attrs,
                text="\n".join(body) + "\n",
            )
        )
        i = j + 1
    return blocks


ALL_BLOCKS = [block for path in DOC_FILES for block in parse_blocks(path)]


def blocks_of(*langs: str, include_no_test: bool = False) -> list[Any]:
    return [
        pytest.param(block, id=block.name)
        for block in ALL_BLOCKS
        if block.lang in langs and (include_no_test or not block.no_test)
    ]


def _count(kind: str) -> None:
    SUMMARY[kind] += 1


# --- inventory ---------------------------------------------------------------------


def test_every_block_says_what_it_is() -> None:
    """Each block names a language this test checks, or is text, or is marked no-test."""
    assert ALL_BLOCKS, "no code blocks found: is the parser broken?"
    unknown = [
        f"{b.name}: info string {b.lang!r}"
        for b in ALL_BLOCKS
        if not b.no_test and b.lang not in CHECKED | NOTHING_TO_RUN
    ]
    assert not unknown, (
        "label these blocks with a checked language (json, python, sh, console, http, csv), "
        "`text` for output, or add `no-test`:\n" + "\n".join(unknown)
    )
    SUMMARY.update(
        "no-test (deliberately not run)"
        if b.no_test
        else ("text (nothing to run)" if b.lang in NOTHING_TO_RUN else f"{b.lang} (checked)")
        for b in ALL_BLOCKS
    )


# --- JSON, CSV, HTTP, YAML -----------------------------------------------------------


def check_problem(document: Any, where: str) -> None:
    """A problem document's ``type`` is its ``code`` under the fixed prefix."""
    if isinstance(document, dict) and str(document.get("type", "")).startswith(PROBLEM_PREFIX):
        assert document["type"] == PROBLEM_PREFIX + document.get("code", ""), where
        assert isinstance(document.get("status"), int), where
        assert document.get("title") and document.get("detail"), where


@pytest.mark.parametrize("block", blocks_of("json"))
def test_json_block_parses(block: Block, tmp_path: Path) -> None:
    """A ``json`` block is valid JSON; a JSON line (``jsonl``) is valid submit input."""
    try:
        document = json.loads(block.text)
    except json.JSONDecodeError as exc:
        pytest.fail(f"{block.name}: not JSON ({exc}); fix it, or label the block `text`")
    check_problem(document, block.name)
    if "jsonl" in block.words:
        data = tmp_path / "rows.jsonl"
        data.write_text(json.dumps(document) + "\n")
        for row in read_rows(data):
            row_claims(row, issuer="acme")


@pytest.mark.parametrize("block", blocks_of("csv"))
def test_csv_block_is_valid_submit_input(block: Block, tmp_path: Path) -> None:
    """A ``csv`` block is a file ``cordiale submit`` accepts: every row makes valid claims."""
    from exchange.default_labels import BENIGN_LABELS, LABELS

    known = {label[0] for label in [*LABELS, *BENIGN_LABELS]}
    data = tmp_path / "rows.csv"
    data.write_text(block.text)
    rows = read_rows(data)
    assert rows, f"{block.name}: no data rows"
    for row in rows:
        claims = row_claims(row, issuer="acme")
        assert set(claims["labels"]) <= known, f"{block.name}: unknown labels {claims['labels']}"


@pytest.mark.parametrize("block", blocks_of("http"))
def test_http_block_body_parses(block: Block) -> None:
    """An ``http`` block's body (after the blank line) is a valid JSON problem document."""
    _head, _, body = block.text.partition("\n\n")
    document = json.loads(body)
    check_problem(document, block.name)


# --- the worked example token ----------------------------------------------------------


def wire_blocks() -> dict[str, Block]:
    found = {b.attrs["wire"]: b for b in ALL_BLOCKS if "wire" in b.attrs}
    assert {"statement-header", "statement-claims", "statement-token"} <= set(found)
    return found


@pytest.mark.django_db
def test_worked_example_token_is_real(settings: Any) -> None:
    """docs/api.md's token verifies with the RFC 8037 key, decodes to the header and claims
    shown next to it, is accepted by a real forum and comes back byte for byte."""
    from rest_framework.test import APIClient

    from members.services import api_key_issue, signing_key_register
    from tests.factories import ACTOR, MemberFactory, make_party

    wire = wire_blocks()
    token = "".join(wire["statement-token"].text.split())
    parsed = jws.parse_compact(token)
    assert jws.verify(parsed, jws.public_key_from_x(RFC8037_X))
    assert jws.jwk_thumbprint(RFC8037_X) == RFC8037_KID == parsed.kid
    assert parsed.header == json.loads(wire["statement-header"].text)
    assert parsed.claims == json.loads(wire["statement-claims"].text)

    # The example is old by now: let the forum accept statements of any age.
    settings.CORDIALE_MAX_STATEMENT_AGE = 100 * 365 * 24 * 3600
    acme = MemberFactory(slug=parsed.claims["iss"])
    signing_key_register(member=acme, public_key=RFC8037_X, actor=ACTOR)
    _, secret = api_key_issue(member=acme, scopes=None, actor=ACTOR)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    answer = client.post("/api/v1/statements", {"statements": [token]}, format="json").json()
    assert answer["results"][0]["status"] == "accepted", answer

    reader = make_party("globex")
    claims = parsed.claims
    snapshot = reader.get(f"/api/v1/signals/{claims['signal_type']}/{claims['value']}").json()
    assert [s["jws"] for s in snapshot["statements"]] == [token]
    _count("wire examples verified against the server")


# --- Python ----------------------------------------------------------------------------


@dataclass
class WebhookDelivery:
    """A delivery as the forum signs it: the names the webhook examples assume."""

    secret: str
    raw_body: bytes
    headers: dict[str, str]


def webhook_delivery() -> WebhookDelivery:
    from standardwebhooks.webhooks import Webhook

    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    body = json.dumps({"type": "changes", "changes": [], "cursor": "eyJ2IjoxfQ"})
    message_id = "msg_2f1c0a9e"
    at = datetime.now(UTC)
    signature = Webhook(secret).sign(message_id, at, body)
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }
    return WebhookDelivery(secret, body.encode(), headers)


def imported_modules(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.ImportFrom):
        return [node.module or ""]
    return [alias.name for alias in node.names]


def project_imports(source: str) -> str:
    """The block's import statements that name this project's packages."""
    tree = ast.parse(source)
    wanted = [
        node
        for node in tree.body
        if isinstance(node, ast.ImportFrom | ast.Import)
        and any(
            name.split(".")[0] in {"exchange", "members", "forum"}
            for name in imported_modules(node)
        )
    ]
    return "\n".join(ast.unparse(node) for node in wanted)


@pytest.mark.parametrize("block", blocks_of("python", include_no_test=True))
def test_python_block_compiles(block: Block) -> None:
    """Every ``python`` block compiles, and what it imports from this project exists."""
    compile(block.text, block.name, "exec")
    # Running the documentation's own examples is the point of this test.
    exec(compile(project_imports(block.text), block.name, "exec"), {})  # noqa: S102


def python_blocks(*, live: bool) -> list[Any]:
    """Python blocks that talk to the forum (they read ``CORDIALE_URL``), or the others."""
    return [p for p in blocks_of("python") if ("CORDIALE_URL" in p.values[0].text) == live]


def run_python_block(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    namespace: dict[str, Any] = {"__name__": "__docs_example__"}
    delivery = None
    if block.attrs.get("fixture") == "webhook-delivery":
        delivery = webhook_delivery()
        namespace.update(vars(delivery))
    monkeypatch.chdir(tmp_path)
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(block.text, block.name, "exec"), namespace)  # noqa: S102
    if delivery is not None and callable(namespace.get("verify")):
        # The hand-written verifier accepts the forum's signature and nothing else.
        verify = namespace["verify"]
        assert verify(delivery.secret, delivery.headers, delivery.raw_body)
        assert not verify(delivery.secret, delivery.headers, delivery.raw_body + b" ")
    _count("python blocks run")


@pytest.mark.django_db
@pytest.mark.parametrize("block", python_blocks(live=False))
def test_python_block_runs(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``python`` block that needs no forum runs (with the test database)."""
    run_python_block(block, tmp_path, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("block", python_blocks(live=True))
def test_python_block_runs_against_a_forum(
    block: Block, forum: LiveForum, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``python`` block that reads ``CORDIALE_URL`` runs as a member's script against a
    live forum: the member ``acme`` with an approved key, which has shared one hash."""
    from exchange.client import load_private_key

    acme = forum.member("acme", tmp_path)
    claims = build_statement(
        issuer="acme",
        signal_type="pdq",
        value="f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22",
        labels=["recruitment"],
        tlp="green",
        audience="forum",
        iat=int(time.time()) - 60,
    )
    with CordialeClient(forum.url, acme.api_key) as client:
        answer = client.submit([sign_statement(claims, load_private_key(acme.key_path))])
    assert answer["accepted"] == 1, answer
    for name, value in {**acme.env(), "CORDIALE_MEMBER": "acme"}.items():
        monkeypatch.setenv(name, value)
    run_python_block(block, tmp_path, monkeypatch)


# --- shell -------------------------------------------------------------------------------


@pytest.mark.parametrize("block", blocks_of("sh", "console", include_no_test=True))
def test_shell_block_syntax(block: Block) -> None:
    """``bash -n`` accepts every shell block (for ``console``, its ``$`` command lines)."""
    script = "\n".join(command_lines(block))
    result = subprocess.run(
        ["bash", "-n"], input=script, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"{block.name}: {result.stderr}"


def command_lines(block: Block) -> list[str]:
    """The block's command lines, continuation lines joined."""
    lines = block.text.splitlines()
    if block.lang == "console":
        commands: list[str] = []
        for line in lines:
            if line.startswith("$ "):
                commands.append(line[2:])
            elif commands and commands[-1].endswith("\\"):
                commands[-1] += "\n" + line
        lines = commands
    return "\n".join(lines).replace("\\\n", " ").splitlines()


SEPARATORS = {"&&", "||", "|", ";", "&", "(", ")"}
REDIRECTS = {">", ">>", "<", "2>", "&>"}
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def simple_commands(line: str) -> Iterator[list[str]]:
    """The simple commands of a shell line, without redirections or leading assignments."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = list(lexer)
    command: list[str] = []
    skip_next = False
    for token in [*tokens, ";"]:
        if skip_next:
            skip_next = False
        elif token in REDIRECTS:
            skip_next = True
        elif token in SEPARATORS:
            while command and ASSIGNMENT.match(command[0]):
                command.pop(0)
            if command:
                yield command
            command = []
        else:
            command.append(token)


def tool_invocation(command: list[str]) -> tuple[str, list[str]] | None:
    """``("cordiale", args)`` or ``("manage.py", args)`` when the command runs one of them."""
    program = Path(command[0]).name
    args = command[1:]
    if program.startswith("python"):
        if args[:2] == ["-m", "exchange.client"]:
            return "cordiale", args[2:]
        if args and Path(args[0]).name == "manage.py":
            return "manage.py", args[1:]
        return None
    if program in ("cordiale", "manage.py"):
        return program, args
    return None


def invocations() -> list[Any]:
    found = []
    for block in ALL_BLOCKS:
        if block.lang not in ("sh", "console"):
            continue
        for line in command_lines(block):
            for command in simple_commands(line):
                tool = tool_invocation(command)
                if tool:
                    found.append(pytest.param(*tool, id=f"{block.name} {shlex.join(command)}"))
    return found


INVOCATIONS = invocations()


def test_the_docs_show_both_tools() -> None:
    """The extraction finds ``cordiale`` and ``manage.py`` command lines to check."""
    tools = Counter(param.values[0] for param in INVOCATIONS)
    assert tools["cordiale"] >= 20 and tools["manage.py"] >= 10, tools
    SUMMARY.update({f"{tool} command lines parsed": n for tool, n in tools.items()})


@pytest.mark.parametrize(("tool", "args"), INVOCATIONS)
def test_command_line_parses(tool: str, args: list[str]) -> None:
    """A ``cordiale`` or ``manage.py`` command line in the docs parses with the real parser."""
    if tool == "cordiale":
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            try:
                build_parser().parse_args(args)
            except SystemExit as exc:
                assert exc.code == 0, f"cordiale {shlex.join(args)}: {stderr.getvalue()}"
        return
    name, rest = args[0], args[1:]
    assert name in get_commands(), f"manage.py has no command {name!r}"
    command = load_command_class(get_commands()[name], name)
    parser = command.create_parser("manage.py", name)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(rest)
    except CommandError as exc:
        pytest.fail(f"manage.py {shlex.join(args)}: {exc}")
    except SystemExit as exc:  # --help
        assert exc.code == 0


def test_no_machine_paths_in_examples() -> None:
    """Examples use relative or generic paths, never one of a particular machine."""
    bad = [b.name for b in ALL_BLOCKS if re.search(r"(?<![\w.])/(work|tmp|home)/", b.text)]
    assert not bad, bad
