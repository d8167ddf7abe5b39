"""Egress control: where a remote card may make PRSM send a request, and how.

A remote card's endpoint is a stranger's text, and the model replica that calls it sits inside the
operator's network (beside the IPFS node's admin API, the Ray dashboard, a cloud's metadata
service). So, by default:

- only `https`, to an address on the public internet: loopback, private, link-local (metadata),
  shared (CGNAT), multicast, reserved and unspecified addresses are refused, as are IPv6 forms
  that carry an IPv4 address (mapped, NAT64, 6to4, Teredo);
- the check is made on the address actually connected to: the host name is resolved once per
  call, every address it resolves to must pass, and the connection goes to the checked address
  (with the host name in the Host header and in TLS SNI/certificate checks), so a DNS answer
  that changes between check and connect (rebinding) changes nothing;
- no redirects; the request path is fixed by PRSM (`<endpoint>/chat/completions`: an endpoint
  with a query, a fragment, user info, a backslash or white space is refused when the card is
  registered); a total deadline and a cap on the response's size for each call.

An operator allows local inference servers (vLLM, llama.cpp) with `PRSM_EGRESS_ALLOW`: entries
are a network (`10.0.0.0/8`), an address or a host name, each with an optional `:port`
(`127.0.0.1:8001`, `[::1]:8001`, `vllm.internal:8000`). An allowed destination may also be plain
`http`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from prsm.errors import InvalidInput, ModelCallFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv6 ranges that embed an IPv4 address or tunnel to one: refused outright (an operator who
# needs one allows it by network).
_TUNNELS = [ipaddress.ip_network(n) for n in ("64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32")]
_HOST_NAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")


@dataclass(frozen=True)
class Endpoint:
    """A checked endpoint URL, split."""

    scheme: str
    host: str  # a host name, or an address without brackets
    port: int
    path: str  # without a trailing slash

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    def url_to(self, address: IPAddress, suffix: str) -> str:
        host = f"[{address}]" if address.version == 6 else str(address)
        return f"{self.scheme}://{host}:{self.port}{self.path}{suffix}"


@dataclass(frozen=True)
class Rule:
    """One operator allowlist entry."""

    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None
    host: str | None
    port: int | None

    @classmethod
    def parse(cls, entry: str) -> Rule:
        text = entry.strip().lower()
        port = None
        if text.startswith("["):  # [v6]:port or [v6]
            inner, _, rest = text[1:].partition("]")
            text, port = inner, _port(rest.removeprefix(":"), entry) if rest else None
        elif text.count(":") == 1:  # host:port or v4:port (a bare v6 address has several)
            text, _, rest = text.partition(":")
            port = _port(rest, entry)
        try:
            return cls(ipaddress.ip_network(text, strict=False), None, port)
        except ValueError:
            pass
        if not text or any(c in text for c in "/@#?\\ "):
            raise ValueError(
                f"egress allowlist entry {entry!r}: give a network, an address or a host, and :port"
            )
        return cls(None, text.rstrip("."), port)

    def allows(self, endpoint: Endpoint, address: IPAddress | None) -> bool:
        if self.port is not None and self.port != endpoint.port:
            return False
        if self.host is not None:
            return endpoint.host == self.host
        return address is not None and address.version == self.network.version and address in self.network


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"egress allowlist entry {entry!r}: the port must be 1 to 65535")
    return int(text)


def is_public(address: IPAddress) -> bool:
    """Whether `address` is on the public internet (and not multicast)."""
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return is_public(address.ipv4_mapped)
        if any(address in network for network in _TUNNELS):
            return False
    return address.is_global and not address.is_multicast


PRIVATE_NAMES = frozenset({"localhost", "metadata", "instance-data"})
PRIVATE_SUFFIXES = (".localhost", ".local", ".internal", ".intranet", ".home.arpa", ".lan")


def private_name(host: str) -> bool:
    host = host.lower().rstrip(".")
    return host in PRIVATE_NAMES or host.endswith(PRIVATE_SUFFIXES)


def parse_endpoint(url: str) -> Endpoint:
    """Split and check an endpoint's form (not its destination): raises InvalidInput."""
    if any(c.isspace() or ord(c) < 32 or c == "\\" for c in url):
        raise InvalidInput("the endpoint has white space, a control character or a backslash", "endpoint")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(f"the endpoint is not a URL: {exc}", "endpoint") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidInput("the endpoint must be an http(s) base URL, e.g. https://host/v1", "endpoint")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InvalidInput("the endpoint must not carry user info (give a credential instead)", "endpoint")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise InvalidInput("the endpoint must not have a query or a fragment: PRSM adds the path", "endpoint")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidInput("the endpoint has no host", "endpoint")
    if _literal(host) is None and not _HOST_NAME.fullmatch(host):
        raise InvalidInput(
            "the endpoint's host must be a plain (ASCII, punycode) name or an address", "endpoint"
        )
    path = parts.path.rstrip("/")
    if any(segment in (".", "..") for segment in path.split("/")) or "%" in path:
        raise InvalidInput("the endpoint's path must be plain (no '.', '..' or escapes)", "endpoint")
    return Endpoint(parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path)


@dataclass(frozen=True)
class EgressPolicy:
    allow: tuple[Rule, ...] = ()
    deadline_s: float = 60.0
    max_response_bytes: int = 4 * 1024**2
    resolve_timeout_s: float = 5.0

    @classmethod
    def from_entries(cls, entries: list[str], **limits) -> EgressPolicy:
        return cls(tuple(Rule.parse(e) for e in entries), **limits)

    def allowed(self, endpoint: Endpoint, address: IPAddress | None) -> bool:
        return any(rule.allows(endpoint, address) for rule in self.allow)

    def check(self, url: str) -> Endpoint:
        """What can be known before resolving: the form, the scheme, a literal address. A card's
        registration runs this (InvalidInput: a 4xx naming `endpoint`)."""
        endpoint = parse_endpoint(url)
        literal = _literal(endpoint.host)
        if literal is not None:
            self._check_address(endpoint, literal, InvalidInput)
        elif private_name(endpoint.host) and not self.allowed(endpoint, None):
            # Names that only ever mean a private network (RFC 6761, 6762, 8375; ICANN's
            # .internal; cloud metadata): refused by name, before any resolver is asked.
            raise InvalidInput(
                f"the endpoint's host {endpoint.host!r} is a private-network name; an operator can "
                "allow it with PRSM_EGRESS_ALLOW",
                "endpoint",
            )
        elif endpoint.scheme != "https" and not self.allowed(endpoint, None):
            # A host name's addresses are checked at each call; plain http needs the allowlist
            # by name (an address can only be judged once resolved).
            raise InvalidInput(
                "plain http is only for destinations the operator allows (PRSM_EGRESS_ALLOW); use https",
                "endpoint",
            )
        return endpoint

    async def vet(self, url: str) -> Endpoint:
        """A card's registration: `check`, and if the host resolves now, every address it
        resolves to (a name that does not resolve yet is judged at each call)."""
        endpoint = self.check(url)
        if _literal(endpoint.host) is None:
            try:
                infos = await asyncio.wait_for(
                    asyncio.get_running_loop().getaddrinfo(
                        endpoint.host, endpoint.port, type=socket.SOCK_STREAM
                    ),
                    self.resolve_timeout_s,
                )
            except (TimeoutError, OSError, ValueError):
                return endpoint
            for info in infos:
                self._check_address(endpoint, ipaddress.ip_address(info[4][0].split("%")[0]), InvalidInput)
        return endpoint

    def _check_address(self, endpoint: Endpoint, address: IPAddress, error=ModelCallFailed) -> None:
        if self.allowed(endpoint, address):
            return
        if not is_public(address):
            raise error(
                f"the endpoint's address {address} is not on the public internet "
                "(loopback, private, link-local, multicast or reserved); an operator can allow it "
                "with PRSM_EGRESS_ALLOW",
                "endpoint",
            )
        if endpoint.scheme != "https":
            raise error(
                "plain http is only for destinations the operator allows (PRSM_EGRESS_ALLOW); use https",
                "endpoint",
            )

    async def resolve(self, endpoint: Endpoint) -> IPAddress:
        """The address to connect to: every address the host resolves to must pass."""
        literal = _literal(endpoint.host)
        if literal is not None:
            self._check_address(endpoint, literal)
            return literal
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(endpoint.host, endpoint.port, type=socket.SOCK_STREAM),
                self.resolve_timeout_s,
            )
        except (TimeoutError, OSError, ValueError) as exc:
            raise ModelCallFailed(f"cannot resolve {endpoint.host}: {exc or 'timed out'}") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))
        if not addresses:
            raise ModelCallFailed(f"{endpoint.host} resolves to no address")
        for address in addresses:  # one bad answer among good ones is refused too
            self._check_address(endpoint, address)
        return addresses[0]


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None
