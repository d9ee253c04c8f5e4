"""``python -m vistrit``: the command line (see :mod:`vistrit.cli`)."""

from vistrit.cli import main

raise SystemExit(main())
