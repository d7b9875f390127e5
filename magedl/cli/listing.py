"""``magedl list``: the files of the catalogue, in the order every command uses."""

from magedl.cli.app import add_command, add_selection
from magedl.cli.common import catalogue, make_client, select_releases
from magedl.cli.output import print_json, print_releases


def add_parser(subparsers) -> None:
    p = add_command(subparsers, "list")
    add_selection(p)
    p.set_defaults(run=run)


def run(args, out) -> int:
    with make_client(args) as client:
        releases = select_releases(catalogue(client), args)
    if args.json:
        print_json([r.to_dict() for r in releases], out)
    else:
        print_releases(releases, out)
    return 0
