"""``python -m ratepool.cli``; prefer ``python -m ratepool``, whose Ctrl-C handler is in place
before any import."""

from ratepool.cli.main import main

raise SystemExit(main())
