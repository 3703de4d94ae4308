"""``python -m accelerando`` runs the ``accelerando`` command."""

import sys

from accelerando.cli import main

sys.exit(main())
