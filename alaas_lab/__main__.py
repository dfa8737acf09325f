"""``python -m alaas_lab`` runs the ``alaas-lab`` command line."""

import sys

from .cli import main

sys.exit(main())
