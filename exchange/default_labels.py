"""The default label taxonomy: (slug, name, kind, description).

``LABELS`` are the TVEC labels; ``BENIGN_LABELS``, of kind ``benign``, are for the
known-benign list (a member or the forum asserting that a value is *not* TVEC, so that
matches near it are flagged). Seeded by data migrations; admins edit them afterwards.
Plain data, so that the migrations and the tests share it without importing models.
"""

LABELS = [
    (
        "imminent-threat",
        "Imminent threat",
        "behaviour",
        "Content signalling a credible, imminent threat of violence.",
    ),
    (
        "graphic-violence",
        "Graphic violence",
        "content",
        "Depiction of violence or its aftermath by or for a terrorist or violent extremist actor.",
    ),
    (
        "glorification",
        "Glorification",
        "behaviour",
        "Praise or glorification of terrorist acts or perpetrators.",
    ),
    (
        "recruitment",
        "Recruitment",
        "behaviour",
        "Recruiting for a terrorist or violent extremist organisation.",
    ),
    (
        "instruction",
        "Instruction",
        "behaviour",
        "Instructional material for attacks: weapons, explosives, tactics.",
    ),
    (
        "attacker-manifesto",
        "Attacker manifesto",
        "content",
        "A manifesto or statement authored by a perpetrator of an attack.",
    ),
    (
        "branded-publication",
        "Branded publication",
        "content",
        "Official branded media of a designated terrorist organisation.",
    ),
    (
        "perpetrator-content",
        "Perpetrator-produced content",
        "content",
        "Content produced by perpetrators during an attack, e.g. a livestream.",
    ),
    ("incitement", "Incitement", "behaviour", "Incitement to commit terrorist violence."),
    (
        "financing",
        "Financing",
        "behaviour",
        "Soliciting or organising funding for terrorist activity.",
    ),
    (
        "designated-entity",
        "Designated entity",
        "entity",
        "Attributed to an entity on a government or UN designation list.",
    ),
    (
        "violent-extremist-entity",
        "Violent extremist entity",
        "entity",
        "Attributed to a violent extremist group not (yet) designated.",
    ),
]

BENIGN_KIND = "benign"

BENIGN_LABELS = [
    (
        "news-reporting",
        "News reporting",
        BENIGN_KIND,
        "Known benign: journalism or documentation about an attack or group, not by or for it.",
    ),
    (
        "counter-speech",
        "Counter-speech",
        BENIGN_KIND,
        "Known benign: content countering or rebutting terrorist and violent extremist messaging.",
    ),
    (
        "satire",
        "Satire",
        BENIGN_KIND,
        "Known benign: satire or parody that reuses terrorist imagery without endorsing it.",
    ),
    (
        "benign-other",
        "Other benign",
        BENIGN_KIND,
        "Known benign for another reason (say which in the statement's ref or an opinion).",
    ),
]
