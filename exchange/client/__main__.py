"""``python -m exchange.client``: the ``cordiale`` command."""

import sys

from exchange.client.cli import main

sys.exit(main())
