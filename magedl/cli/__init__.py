"""The command line: parsing, rendering, progress, and errors mapped to exit codes."""

from magedl.cli.app import main

__all__ = ["main"]
