// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @title Batched settlement of the PRSM ledger.
/// @notice Holds the FTNS reserve. Users deposit by transferring FTNS to this contract's
/// address; the ledger credits them after confirmation. Once per epoch the operator pays every
/// payee's netted earnings in one transaction.
/// @dev A batch transfer, not a Merkle root with claims: payees receive funds without acting
/// and without paying gas, and an epoch costs one transaction instead of one root plus one claim
/// per payee (a claim alone costs more than a transfer here). `settled` makes an epoch payable
/// once, whatever the operator's software does: a crashed settler that sends its epoch again
/// is refused by the chain.
contract FTNSSettlement is Ownable {
    using SafeERC20 for IERC20;

    IERC20 public immutable token;
    mapping(uint256 epoch => bool) public settled;

    event EpochSettled(uint256 indexed epoch, uint256 payees, uint256 total);

    error EpochAlreadySettled(uint256 epoch);
    error LengthMismatch(uint256 payees, uint256 amounts);

    constructor(IERC20 token_, address initialOwner) Ownable(initialOwner) {
        token = token_;
    }

    function settle(uint256 epoch, address[] calldata payees, uint256[] calldata amounts) external onlyOwner {
        if (settled[epoch]) revert EpochAlreadySettled(epoch);
        if (payees.length != amounts.length) revert LengthMismatch(payees.length, amounts.length);
        settled[epoch] = true;
        uint256 total;
        for (uint256 i; i < payees.length; ++i) {
            token.safeTransfer(payees[i], amounts[i]);
            total += amounts[i];
        }
        emit EpochSettled(epoch, payees.length, total);
    }
}
