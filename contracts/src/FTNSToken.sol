// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @title FTNS, the PRSM token, on an Ethereum-compatible chain.
/// @notice 18 decimals, like the off-chain ledger's base units. The owner (the PRSM operator)
/// mints; the settlement contract holds the reserve that pays model owners and operators.
contract FTNSToken is ERC20, Ownable {
    constructor(address initialOwner) ERC20("PRSM FTNS", "FTNS") Ownable(initialOwner) {}

    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }
}
