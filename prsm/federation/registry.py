"""The node registry on chain, and this node's membership in it.

The registry contract (contracts/src/PRSMNodeRegistry.sol) is shared by every node of a network:
its address comes from PRSM_FEDERATION_REGISTRY, or, on a development chain only, it is
deployed on first use and kept in `chain_state` (a second node on that chain is given the address
`prsm federation status` prints). A node is its operator's address (PRSM_CHAIN_KEY or the
keystore): it announces its public endpoint and its catalogue's CID, announces again to change
either, and leaves. Federation needs a chain the peers share, so the in-process chain of the
embedded default is refused.

Before announcing, this node proves its endpoint reaches it from outside its own process: it
writes a random challenge to its database, asks `GET <endpoint>/v1/federation/node` over the
network (a deadline, no redirects, a size cap) and announces only if the answer carries that
challenge, so an endpoint that is down, a typo, or another node's address is refused before
anything is sent to the chain.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from web3 import Web3

from prsm.chain.contracts import Contracts
from prsm.db.engine import Database
from prsm.errors import ChainError, InvalidInput
from prsm.federation.node import NODE_PATH

CHECK_TIMEOUT_S = 5.0
MAX_ANSWER_BYTES = 64 * 1024
MAX_ENDPOINT = 256  # the contract's limits
MAX_CATALOGUE = 128


@dataclass(frozen=True)
class Node:
    operator: str
    endpoint: str
    catalogue: str
    block: int


def check_endpoint_text(endpoint: str) -> str:
    """An absolute http(s) URL with a host and no query, fragment or credentials; without a
    trailing slash."""
    endpoint = endpoint.strip().rstrip("/")
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"{endpoint!r} is not an http(s) URL with a host", "endpoint")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise InvalidInput("the endpoint has no query, fragment or credentials", "endpoint")
    if len(endpoint.encode()) > MAX_ENDPOINT:
        raise InvalidInput(f"the endpoint is longer than {MAX_ENDPOINT} bytes", "endpoint")
    return endpoint


class NodeRegistry:
    def __init__(
        self, contracts: Contracts, db: Database, configured: str | None = None, start_block: int = 0
    ):
        self.contracts = contracts
        self.chain = contracts.chain
        self.db = db
        self.configured = configured
        self.start_block = start_block  # where a configured registry is followed from

    def address(self, deploy: bool = True) -> dict:
        """{"registry": address, "block": where to follow it from}."""
        if self.configured:
            if not self.chain.has_code(self.configured):
                raise ChainError(
                    f"PRSM_FEDERATION_REGISTRY names {self.configured}, but chain {self.chain.chain_id} has "
                    "no contract there",
                    "federation_registry",
                )
            return {"registry": Web3.to_checksum_address(self.configured), "block": self.start_block}
        key = f"federation:registry:{self.chain.chain_id}"
        state = self.contracts.state(key)
        if state is not None and self.chain.has_code(state["registry"]):
            return state
        if not self.chain.is_dev:
            raise ChainError(
                "no node registry: set PRSM_FEDERATION_REGISTRY to the network's registry address",
                "federation_registry",
            )
        if not deploy:
            raise ChainError(f"no node registry on chain {self.chain.chain_id} yet", "federation_registry")
        receipt = self.chain.send(self.chain.contract("PRSMNodeRegistry").constructor())
        state = {"registry": receipt.contractAddress, "block": receipt.blockNumber}
        with self.db.writer.begin() as conn:
            self.contracts.set_state(conn, key, state)
        return state

    def contract(self, deploy: bool = False):
        """The registry contract (on a development chain, deployed first if `deploy`)."""
        return self.chain.contract("PRSMNodeRegistry", self.address(deploy)["registry"])

    def announce(self, endpoint: str, catalogue: str) -> int:
        """Announce (or update) this operator's node; the block it landed in."""
        endpoint = check_endpoint_text(endpoint)
        if not catalogue or len(catalogue.encode()) > MAX_CATALOGUE:
            raise InvalidInput(
                f"the catalogue CID is empty or longer than {MAX_CATALOGUE} bytes", "catalogue"
            )
        return self.chain.send(self.contract(deploy=True).functions.announce(endpoint, catalogue)).blockNumber

    def leave(self) -> int:
        if self.node_of(self.chain.operator.address) is None:
            raise InvalidInput(f"{self.chain.operator.address} is not a member of the network", "operator")
        return self.chain.send(self.contract().functions.leave()).blockNumber

    def node_of(self, operator: str) -> Node | None:
        endpoint, catalogue, joined, _ = (
            self.contract().functions.nodeOf(Web3.to_checksum_address(operator)).call()
        )
        return None if joined == 0 else Node(Web3.to_checksum_address(operator), endpoint, catalogue, 0)

    def members(self, from_block: int | None = None) -> dict[str, Node]:
        """Every member now, by operator, from the registry's events since `from_block` (its
        deployment by default): announcements in chain order, a leave removes."""
        where = self.address(deploy=False)
        contract = self.chain.contract("PRSMNodeRegistry", where["registry"])
        start = where["block"] if from_block is None else from_block
        events = [
            *self.contracts.logs(contract.events.NodeAnnounced, start, None),
            *self.contracts.logs(contract.events.NodeLeft, start, None),
        ]
        members: dict[str, Node] = {}
        for e in sorted(events, key=lambda e: (e.blockNumber, e.logIndex)):
            operator = e.args.operator
            if e.event == "NodeLeft":
                members.pop(operator, None)
            else:
                members[operator] = Node(operator, e.args.endpoint, e.args.catalogue, e.blockNumber)
        return members


def new_challenge() -> str:
    return secrets.token_hex(16)


def check_reachable(endpoint: str, challenge: str, timeout_s: float = CHECK_TIMEOUT_S) -> None:
    """Raise unless `GET <endpoint>/v1/federation/node` answers with `challenge` in time."""
    url = check_endpoint_text(endpoint) + NODE_PATH
    try:
        with (
            httpx.Client(timeout=timeout_s, follow_redirects=False, trust_env=False) as client,
            client.stream("GET", url, headers={"accept": "application/json"}) as response,
        ):
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_ANSWER_BYTES:
                    raise InvalidInput(f"{url} answers with more than {MAX_ANSWER_BYTES} bytes", "endpoint")
    except httpx.HTTPError as exc:
        raise InvalidInput(f"{url} does not answer: {type(exc).__name__}: {exc}", "endpoint") from None
    if response.status_code != 200:
        raise InvalidInput(f"{url} answers {response.status_code}, not this node's record", "endpoint")
    try:
        answered = httpx.Response(200, content=body).json().get("challenge")
    except (ValueError, AttributeError):
        answered = None
    if answered != challenge:
        raise InvalidInput(
            f"{url} answers, but not as this node (its challenge differs): is it another node's address?",
            "endpoint",
        )
