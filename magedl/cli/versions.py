"""``magedl versions``: the versions of each feed category, newest first."""

from magedl.cli.app import add_command, add_selection
from magedl.cli.common import catalogue, make_client, select_releases
from magedl.cli.output import print_json, print_versions
from magedl.versions import edition_of, sort_versions


def add_parser(subparsers) -> None:
    p = add_command(subparsers, "versions")
    add_selection(p, versions=False)
    p.set_defaults(run=run)


def run(args, out) -> int:

    with make_client(args) as client:
        releases = catalogue(client)
    if args.type:
        select_releases(releases, args)  # an unknown --type is refused, naming the known ones
    types = args.type or sorted({r.type for r in releases})
    rows = []
    for type_ in types:
        for version in sort_versions({r.version for r in releases if r.type == type_ and r.version}):
            rows.append({"type": type_, "edition": edition_of(type_), "version": version})
    if args.json:
        print_json(rows, out)
    else:
        print_versions(rows, out)
    return 0
