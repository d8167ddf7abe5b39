"""Federation (issue 15): independent PRSM nodes that find each other on chain, call each other's
models and pay each other.

Membership: a node registry contract (contracts/src/PRSMNodeRegistry.sol) where a node, identified
by its operator's chain key, announces its public endpoint and the CID of its catalogue
(catalogue.py: its public model cards and how it is paid, stored by CID); `prsm federation
announce` first checks that the endpoint answers as this node from outside its process
(registry.py); `prsm federation sync` and the scheduled job follow the registry into the
`federation_peers` table, resuming where they stopped (follow.py). Routing: the peers' models
become cards of kind `peer` for this node's router (market.py), called with requests signed by
this node's chain key (prsm/chain/signing.py, prsm/backends/peer.py) and answered by the peer's
`POST /v1/federation/call` (serve.py). Paying: one ledger account per peer, settled by the
ordinary settlement epochs (market.py explains).
"""
