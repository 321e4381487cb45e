"""``python -m router``: the command line (see :mod:`router.cli`)."""

from router.cli import main

raise SystemExit(main())
