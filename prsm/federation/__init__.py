"""Federation (issue 15): independent PRSM nodes that find each other on chain.

This first part is membership: a node registry contract beside the FTNS contracts
(contracts/src/PRSMNodeRegistry.sol) where a node, identified by its operator's chain key,
announces its public endpoint and the CID of its catalogue (catalogue.py: a JSON document of its
public model cards, stored by CID); `prsm federation announce` checks first that the endpoint
answers as this node from outside its process (registry.py); `prsm federation sync` follows the
registry into the `federation_peers` table, resuming where it stopped (follow.py). Routing
sub-tasks to peers and paying them are not built yet.
"""
