from magedl.cli import entry

raise SystemExit(entry())
