// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title Who is in the PRSM network.
/// @notice A node is its operator's address: it announces its public endpoint and the CID of
/// its catalogue (a JSON document of its public model cards, stored in IPFS), announces again to
/// change either, and leaves. The chain is the source of truth for membership only: what a node
/// offers is in its catalogue, and how well it serves is each peer's own measurement.
/// @dev Followers read the events from a start block; `nodeOf` answers for one operator.
contract PRSMNodeRegistry {
    struct Node {
        string endpoint;
        string catalogue;
        uint64 joined;
        uint64 updated;
    }

    uint256 public constant MAX_ENDPOINT = 256;
    uint256 public constant MAX_CATALOGUE = 128;

    mapping(address operator => Node) private _nodes;
    uint256 public members;

    event NodeAnnounced(address indexed operator, string endpoint, string catalogue);
    event NodeLeft(address indexed operator);

    error BadField(string field);
    error NotAMember(address operator);

    function announce(string calldata endpoint, string calldata catalogue) external {
        uint256 e = bytes(endpoint).length;
        uint256 c = bytes(catalogue).length;
        if (e == 0 || e > MAX_ENDPOINT) revert BadField("endpoint");
        if (c == 0 || c > MAX_CATALOGUE) revert BadField("catalogue");
        Node storage node = _nodes[msg.sender];
        if (node.joined == 0) {
            node.joined = uint64(block.timestamp);
            members += 1;
        }
        node.endpoint = endpoint;
        node.catalogue = catalogue;
        node.updated = uint64(block.timestamp);
        emit NodeAnnounced(msg.sender, endpoint, catalogue);
    }

    function leave() external {
        if (_nodes[msg.sender].joined == 0) revert NotAMember(msg.sender);
        delete _nodes[msg.sender];
        members -= 1;
        emit NodeLeft(msg.sender);
    }

    function nodeOf(address operator)
        external
        view
        returns (string memory endpoint, string memory catalogue, uint64 joined, uint64 updated)
    {
        Node storage node = _nodes[operator];
        return (node.endpoint, node.catalogue, node.joined, node.updated);
    }
}
