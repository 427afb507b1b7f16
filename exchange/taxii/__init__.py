"""The TAXII 2.1 read channel (``/taxii2/``): the forum's signals as STIX 2.1 objects for
threat-intelligence platforms (MISP, OpenCTI, TIPs, SIEMs).

Collections. A reader has the forum's collection (audience ``0``) and one per sharing
group it belongs to now (audience = the group's id); ids are UUIDv5 of the audience,
aliases ``forum`` and ``group-<slug>``. Any other id, including a group the reader is
not in, gets the same 404.

What a collection holds. TAXII reads are feed reads: a page of a collection is the feed
rows of its audience after a position (``exchange/feed.py``), each turned into the
current STIX objects of its signal in that audience as the reader may see it now, by the
feed's visibility rule (``exchange.selectors``) restricted to the audience
(``exchange/client/stix.py`` says what the objects are). A member whose statement on the
signal was addressed to the audience and no longer is visible there gets a last,
revoked version of its indicator, only if the reader was in the audience when the row
was written (``Reader.may_tombstone``, as for the feed's tombstones): an outsider never
sees an object, not even revoked. The static objects (TLP markings, the forum's
identity, the JWS extension's definition) open every collection.

Order and ``added_after``. An object's ``date_added`` is its feed row's ``added_at``,
which the feed hands out under its append lock (``exchange.feed.feed_append``, "Dates"):
the later of now and the previous row's plus one microsecond. Rows are appended in
commit order, so ``added_at`` grows strictly in commit order and no two rows share one,
even when many commit in the same microsecond; a row still in flight will get a later
one than every committed row. So "objects added after T" is exactly "rows after the last
row added at or before T" (found by a binary search over positions, since ``added_at``
grows with ``seq``), and a client that keeps the last ``X-TAXII-Date-Added-Last`` (or
follows ``next``, an opaque token of the position) never misses a committed change. A
signal's objects share its row's ``date_added`` and are never split between pages: a
page ends on a row boundary, so a signal with more objects than ``limit`` gets a page
of its own, larger than ``limit``. Repeated rows of one signal in a page give its
objects once (the state is read when the page is read, as for the feed).

Cost. A page is one index range scan on ``(audience, seq)`` and four batch reads for
its signals (statements, first receipt times, opinions, and values of signals that
left the audience), then dicts dumped by orjson: no serializer per object
(tests/bench/bench_taxii.py compares it with the pull feed).

Not served: historical versions (a collection holds each object's latest version, so
``match[version]`` ``all`` equals ``last``), withdrawn opinions (an opinion's row is
deleted when its author withdraws it: its object just stops appearing), and revoked
versions for a reader that left a group (the group's collection is gone for it; the pull
feed's tombstones cover that case). ``/objects/<id>/`` and ``/versions/`` are the
listing filtered to the id: a long collection may take several pages (``next``).
"""
