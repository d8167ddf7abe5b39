"""The `prsm` command: run the embedded stack, ask questions, manage models, FTNS and storage.

One module per command group (stack, query, models, keys, audit, ftns, store, db, ops, backup, cluster, distill), each adding its
subcommands to one parser. Errors print one line to stderr and exit with status 1; usage
errors exit with 2 (argparse).
"""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from prsm.cli import (
    audit,
    backup,
    cluster,
    db,
    distill,
    federation,
    ftns,
    keys,
    loop,
    models,
    ops,
    query,
    stack,
    stats,
    store,
)
from prsm.cli.common import CLIError, err
from prsm.errors import PRSMError
from prsm.services import Services


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="prsm", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    for group in (
        stack,
        query,
        models,
        keys,
        audit,
        ftns,
        store,
        db,
        ops,
        backup,
        cluster,
        stats,
        loop,
        federation,
    ):
        group.add(sub)
    sub.add_parser(
        "distill", help="distil a teacher into a smaller student (prsm distill --help)", add_help=False
    )
    _know_yourselves(p)
    return p


def _know_yourselves(p: argparse.ArgumentParser) -> None:
    """Each command's parser, in its own namespace: a usage error shows that command's usage."""
    p.set_defaults(parser=p)
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _know_yourselves(child)


def normalise(argv: list[str]) -> list[str]:
    """`prsm session ID` is short for `prsm session show ID` (the form the README has always shown);
    `prsm stats [options]` for `prsm stats summary [options]`."""
    if argv[:1] == ["session"] and len(argv) > 1 and argv[1] not in (*query.SESSION_VERBS, "-h", "--help"):
        return ["session", "show", *argv[1:]]
    if argv[:1] == ["stats"] and (len(argv) == 1 or argv[1] not in (*stats.VERBS, "-h", "--help")):
        return ["stats", "summary", *argv[1:]]  # `prsm stats` is `prsm stats summary`
    return argv


def main(argv: list[str] | None = None) -> int:
    argv = normalise(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["distill"]:  # its arguments come from DistillSpec: its own parser
        return distill.main(argv[1:])
    try:
        args, extra = parser().parse_known_args(argv)
        if extra:
            args.parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed by argparse
        return int(exc.code or 0)
    try:
        services = Services()
    except ValidationError as exc:  # a PRSM_* variable (or .env line) that does not parse
        first = exc.errors()[0]
        err.print(f"[red]error:[/red] PRSM_{str(first['loc'][0]).upper()}: {first['msg']}")
        return 1
    try:
        args.fn(args, services)
    except (CLIError, PRSMError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        services.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
