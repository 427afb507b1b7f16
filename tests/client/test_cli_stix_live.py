"""``cordiale submit bundle.json`` as a real process against a live forum.

The bundle is what MISP exports (made by misp-stix at test time); the forum must hold the
statements the member meant, signed with the member's key, and nothing for what the
bundle held that the forum does not take.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exchange.models import Statement
from tests.client.stix_samples import (
    FILENAME_MD5,
    SHA256,
    URL_CANONICAL,
    misp_export,
)
from tests.support.live_server import LiveForum

MD5 = "d41d8cd98f00b204e9800998ecf8427e"


@pytest.mark.slow
def test_a_misp_export_submitted_to_a_live_forum(forum: LiveForum, tmp_path: Path) -> None:
    """The four indicators with supported patterns are stored as acme's statements (labels
    from the map, TLP from the markings); the others are listed; a second run sends
    nothing new; the forum stores nothing else."""
    acme = forum.member("acme", tmp_path)
    export = misp_export()
    bundle = tmp_path / "misp-event.json"
    bundle.write_text(json.dumps(export.bundle))
    label_map = tmp_path / "labels.json"
    label_map.write_text('{"tvec:recruitment": ["recruitment", "glorification"]}')

    run = forum.cli(acme, "submit", str(bundle), "--label-map", str(label_map))
    assert run.returncode == 0, run.stderr
    assert {k: run.last[k] for k in ("accepted", "rejected", "indicators")} == {
        "accepted": 4,
        "rejected": 0,
        "indicators": 4,
    }
    assert len(run.last["unsupported"]) == 3
    stored = {
        (s.signal.signal_type, s.signal.value): (s.tlp, sorted(s.labels), s.audience, s.kid)
        for s in Statement.objects.select_related("signal").filter(member__slug="acme")
    }
    signed_as = ("recruitment", "glorification")
    assert stored == {
        ("md5", MD5): ("green", sorted(signed_as), "forum", acme.kid),
        ("sha256", SHA256): ("amber", sorted(signed_as), "forum", acme.kid),
        ("url", URL_CANONICAL): ("amber", sorted(signed_as), "forum", acme.kid),
        ("md5", FILENAME_MD5): ("amber", sorted(signed_as), "forum", acme.kid),
    }

    again = forum.cli(acme, "submit", str(bundle), "--label-map", str(label_map))
    assert again.returncode == 0, again.stderr
    assert Statement.objects.filter(member__slug="acme").count() == 4
