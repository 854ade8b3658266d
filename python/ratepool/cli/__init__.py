"""The ``ratepool`` command line (printing happens here, not in the library): `main` runs it,
`build_parser` describes it."""

from ratepool.cli.main import main
from ratepool.cli.parser import build_parser

__all__ = ["main", "build_parser"]
