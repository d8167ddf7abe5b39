"""`prsm store put|get|pin|unpin|ls|gc`: the content-addressed store (local, or an IPFS node)."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from rich.table import Table

from prsm.cli.common import CLIError, console, err
from prsm.services import Services


def add(sub: argparse._SubParsersAction) -> None:
    store = sub.add_parser(
        "store", help="content-addressed store: put (prints the CID), get, pin, unpin, ls, gc"
    ).add_subparsers(dest="action", required=True)
    put_ = store.add_parser("put", help="store a file, a folder or stdin (-); prints the CID")
    put_.add_argument("source", help="FILE, FOLDER or - (stdin)")
    put_.add_argument("--no-pin", action="store_true", help="do not pin (gc may remove it)")
    put_.set_defaults(fn=put)
    get_ = store.add_parser("get", help="the verified bytes of a CID (a folder needs -o)")
    get_.add_argument("cid")
    get_.add_argument("-o", "--output", help="write to this file or new folder (default: stdout)")
    get_.set_defaults(fn=get)
    pin_ = store.add_parser("pin", help="keep a CID's blocks through gc")
    pin_.add_argument("cid")
    pin_.set_defaults(fn=pin)
    unpin_ = store.add_parser("unpin", help="let gc remove a CID's blocks")
    unpin_.add_argument("cid")
    unpin_.set_defaults(fn=unpin)
    store.add_parser("ls", help="pinned CIDs").set_defaults(fn=ls)
    store.add_parser("gc", help="remove the blocks no pin reaches").set_defaults(fn=gc)


def put(args: argparse.Namespace, services: Services) -> None:
    store, source = services.store, Path(args.source)
    if args.source == "-":
        cid = store.put(sys.stdin.buffer)
    elif source.is_dir():  # a UnixFS directory, as `ipfs add -r` makes it
        cid = store.put_dir(source)
    elif source.is_file():
        cid = store.put(source)
    else:
        raise CLIError(f"no such file or folder: {args.source}")
    if not args.no_pin:
        store.pin(cid)
    print(cid)  # plain stdout: scripts read the CID


def get(args: argparse.Namespace, services: Services) -> None:
    store = services.store
    if store.is_dir(args.cid):
        if not args.output:
            raise CLIError(f"{args.cid} is a folder: give -o FOLDER to write it to")
        target = Path(args.output)
        if target.exists():
            raise CLIError(f"{target} exists: give a new folder")
        partial = target.with_name(f".{target.name}.part")
        shutil.rmtree(partial, ignore_errors=True)
        store.get_dir(args.cid, partial)
        partial.rename(target)
        err.print(f"wrote {target}/")
        return
    chunks = store.get(args.cid)  # a missing or corrupt root fails before any output
    if args.output:
        partial = Path(args.output).with_name(f".{Path(args.output).name}.part")
        with open(partial, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
        partial.replace(args.output)
        err.print(f"wrote {args.output}")
    else:
        for chunk in chunks:
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()


def pin(args: argparse.Namespace, services: Services) -> None:
    services.store.pin(args.cid)
    console.print(f"pinned {args.cid}")


def unpin(args: argparse.Namespace, services: Services) -> None:
    services.store.unpin(args.cid)
    console.print(f"unpinned {args.cid} (its blocks go at the next gc)")


def ls(args: argparse.Namespace, services: Services) -> None:
    store = services.store
    table = Table(title=f"Pinned in {store.location}")
    for column in ("cid", "blocks", "bytes"):
        table.add_column(column)
    for row in store.ls():
        table.add_row(row["cid"], str(row["blocks"]), str(row["bytes"]))
    console.print(table)


def gc(args: argparse.Namespace, services: Services) -> None:
    done = services.store.gc()  # an IPFS node reports only what it removed
    freed = f" ({done['freed_bytes']} bytes)" if "freed_bytes" in done else ""
    kept = f"; kept {done['kept_blocks']}" if "kept_blocks" in done else ""
    console.print(f"removed {done['removed_blocks']} blocks{freed}{kept}")
