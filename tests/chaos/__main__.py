"""``python -m tests.chaos``: see ``tests/chaos/campaign.py`` and ``--help``."""

import sys

from tests.chaos.campaign import main

sys.exit(main())
