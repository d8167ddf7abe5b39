"""`prsm federation`: this node's membership in a network of PRSM nodes (prsm/federation/).

prsm federation announce --endpoint https://node.example.org   # check, publish, announce
prsm federation status                                         # the registry and this node
prsm federation nodes [--from-block N] [--json]                # every member, from the chain
prsm federation leave
prsm federation sync [--json]                                  # follow the registry (resumes)
prsm federation peers [--json]                                 # the peers this node follows
"""

from __future__ import annotations

import argparse
import json

from rich.table import Table

from prsm.cli.common import CLIError, console
from prsm.ftns.amounts import format_ftns
from prsm.services import Services


def add(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser(
        "federation", help="this node in a network of PRSM nodes (on chain)"
    ).add_subparsers(dest="action", required=True)
    announce_ = group.add_parser(
        "announce", help="publish this node's catalogue and announce its endpoint in the node registry"
    )
    announce_.add_argument("--endpoint", required=True, help="this node's public URL, as peers reach it")
    announce_.set_defaults(fn=announce)
    status_ = group.add_parser("status", help="the registry's address and this node's membership")
    status_.add_argument("--json", action="store_true", help="one JSON object")
    status_.set_defaults(fn=status)
    nodes_ = group.add_parser("nodes", help="every member of the network, read from the registry's events")
    nodes_.add_argument("--from-block", type=int, help="follow the registry from this block (its deployment)")
    nodes_.add_argument("--json", action="store_true", help="one JSON object")
    nodes_.set_defaults(fn=nodes)
    group.add_parser("leave", help="leave the network").set_defaults(fn=leave)
    sync_ = group.add_parser(
        "sync", help="follow the registry: update this node's peers and fetch their catalogues"
    )
    sync_.add_argument("--json", action="store_true", help="one JSON object")
    sync_.set_defaults(fn=sync)
    peers_ = group.add_parser("peers", help="the peers this node follows, with their catalogues' status")
    peers_.add_argument("--json", action="store_true", help="one JSON object")
    peers_.set_defaults(fn=show_peers)


def registry_of(services: Services):
    """The node registry on the chain the settings name; refused on the in-process chain, which
    no other node can reach."""
    if not services.settings.chain_url:
        raise CLIError(
            "federation needs a chain the other nodes share: set PRSM_CHAIN_URL (and PRSM_CHAIN_KEY), "
            "not the embedded in-process chain"
        )
    from prsm.cli.ftns import contracts_of
    from prsm.federation.registry import NodeRegistry

    s = services.settings
    return NodeRegistry(contracts_of(services), services.db, s.federation_registry, s.federation_start_block)


def announce(args: argparse.Namespace, services: Services) -> None:
    from prsm.federation import catalogue, node, registry

    services.db.upgrade()
    nodes = registry_of(services)
    endpoint = registry.check_endpoint_text(args.endpoint)
    operator = nodes.chain.operator.address
    paid = nodes.contracts.addresses()  # this node's settlement contract (deployed on first use)
    offered = catalogue.build(
        services.registry, operator, nodes.chain.chain_id, paid["token"], paid["settlement"]
    )
    cid = catalogue.publish(services.store, offered)
    challenge = registry.new_challenge()
    before = node.record(services.db)
    pending = {"operator": operator, "endpoint": endpoint, "catalogue": cid, "challenge": challenge,
               "chain_id": nodes.chain.chain_id, "announced": bool(before and before.get("announced"))}  # fmt: skip
    node.save_record(services.db, pending)
    try:
        console.print(f"checking that {endpoint} answers as this node ...")
        registry.check_reachable(endpoint, challenge)
        block = nodes.announce(endpoint, cid)
    except BaseException:  # refused, or the chain failed: the record is what it was
        if before is None:
            node.forget_record(services.db)
        else:
            node.save_record(services.db, before)
        raise
    node.save_record(services.db, {**pending, "announced": True, "block": block})
    console.print(
        f"{operator} announced {endpoint} with catalogue {cid} in block {block} "
        f"(registry {nodes.address()['registry']})"
    )


def status(args: argparse.Namespace, services: Services) -> None:
    from prsm.federation import node

    services.db.upgrade()
    nodes = registry_of(services)
    where = nodes.address(deploy=False)
    mine = nodes.node_of(nodes.chain.operator.address)
    out = {"registry": where["registry"], "from_block": where["block"], "chain_id": nodes.chain.chain_id,
           "operator": nodes.chain.operator.address, "member": mine is not None,
           "endpoint": mine.endpoint if mine else None, "catalogue": mine.catalogue if mine else None,
           "record": {k: v for k, v in (node.record(services.db) or {}).items() if k != "challenge"}}  # fmt: skip
    if args.json:
        print(json.dumps(out))
        return
    console.print(f"registry {out['registry']} on chain {out['chain_id']} (from block {out['from_block']})")
    if mine is None:
        console.print(f"{out['operator']} is not a member: prsm federation announce --endpoint URL")
    else:
        console.print(f"{out['operator']} is a member: {mine.endpoint}, catalogue {mine.catalogue}")


def nodes(args: argparse.Namespace, services: Services) -> None:
    if args.from_block is not None and args.from_block < 0:
        raise CLIError("--from-block is a block number (0 or more)")
    services.db.upgrade()
    members = registry_of(services).members(args.from_block)
    rows = [{"operator": n.operator, "endpoint": n.endpoint, "catalogue": n.catalogue, "block": n.block}
            for n in members.values()]  # fmt: skip
    if args.json:
        print(json.dumps({"nodes": rows}))
        return
    table = Table(title=f"Nodes ({len(rows)})")
    for column in ("operator", "endpoint", "catalogue", "announced in block"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["operator"], r["endpoint"], r["catalogue"], str(r["block"]))
    console.print(table)


def leave(args: argparse.Namespace, services: Services) -> None:
    from prsm.federation import node

    services.db.upgrade()
    nodes = registry_of(services)
    block = nodes.leave()
    node.forget_record(services.db)
    console.print(f"{nodes.chain.operator.address} left the network in block {block}")


def sync(args: argparse.Namespace, services: Services) -> None:
    from prsm.federation import follow

    services.db.upgrade()
    done = follow.follow(registry_of(services), services.store, services.registry, services.settings)
    if args.json:
        print(json.dumps(done))
        return
    console.print(follow.summary(done))


def show_peers(args: argparse.Namespace, services: Services) -> None:
    from prsm.federation import follow

    services.db.upgrade()
    found = follow.peers(services.db)
    if args.json:
        print(json.dumps({"peers": found}))
        return
    table = Table(title=f"Peers ({len(found)})")
    for column in ("operator", "endpoint", "catalogue", "status", "models", "balance (FTNS)"):
        table.add_column(column)
    for p in found:
        status = p["status"] if not p["error"] else f"{p['status']}: {p['error'][:60]}"
        table.add_row(p["operator"], p["endpoint"], p["catalogue"], status, ", ".join(p["models"]),
                      format_ftns(int(p["balance"])))  # fmt: skip
    console.print("balance > 0: this node owes the peer; < 0: the peer owes this node (settled per epoch)")
    console.print(table)
