"""Sightings: what members' matches on a signal ended as (issue #18, part 4).

``models`` (one row per member, signal, outcome and reporting period), ``services``
(the batch report), ``selectors`` (the aggregate a reader sees in a snapshot, the
members behind false positives for the dispute threshold, a member's own reports),
``reports`` (the transparency report's figures), ``apis`` and ``openapi``.
"""
