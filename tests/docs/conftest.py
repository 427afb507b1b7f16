"""Reports how many documentation examples of each kind were checked or left out."""

from __future__ import annotations

from typing import Any


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from tests.docs.test_examples import SUMMARY

    if not SUMMARY:
        return
    terminalreporter.section("documentation examples")
    for kind, count in sorted(SUMMARY.items()):
        terminalreporter.write_line(f"{count:5d}  {kind}")
