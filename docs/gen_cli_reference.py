"""Writes the CLI reference page from the argparse parser itself (run by mkdocs-gen-files), so
the page cannot drift from the command."""

from __future__ import annotations

import argparse

import mkdocs_gen_files

from ratepool.cli.parser import build_parser


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse offers no public accessor for subparsers
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _page() -> str:
    parser = build_parser()
    parser.prog = "ratepool"
    parts = ["# Command-line reference\n",
             "Generated from the `ratepool` parser when the site is built.\n",
             "```text\n" + parser.format_help() + "```\n"]
    for name, sub in _subcommands(parser).items():
        sub.prog = f"ratepool {name}"
        parts.append(f"## ratepool {name}\n\n```text\n{sub.format_help()}```\n")
    return "\n".join(parts)


with mkdocs_gen_files.open("reference/cli.md", "w") as page:
    page.write(_page())
