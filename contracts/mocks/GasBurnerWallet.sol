// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";

/// @title GasBurnerWallet (test mock, never deployed by the platform)
/// @notice An EIP-1271 wallet that turns hostile: in mode Honest it accepts its owner's signatures
/// (so it can be onboarded with a valid proof); in mode Burn its `isValidSignature` burns all the
/// gas it is given; in mode HugeReturn it answers the magic value followed by a 1 MiB blob.
contract GasBurnerWallet {
    enum Mode {
        Honest,
        Burn,
        HugeReturn
    }

    address public immutable owner;
    Mode public mode;

    constructor(address owner_) {
        owner = owner_;
    }

    function setMode(Mode mode_) external {
        require(msg.sender == owner, "owner");
        mode = mode_;
    }

    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        Mode m = mode;
        if (m == Mode.Burn) {
            uint256 x;
            while (true) {
                x = uint256(keccak256(abi.encode(x)));
            }
        }
        if (m == Mode.HugeReturn) {
            assembly {
                // 1 MiB: the magic value in the first word, then zeros (its memory alone costs
                // far more than the ledger's gas cap, so the call fails inside the wallet).
                mstore(0, shl(224, 0x1626ba7e))
                return(0, 0x100000)
            }
        }
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(hash, signature);
        if (err == ECDSA.RecoverError.NoError && signer == owner) return IERC1271.isValidSignature.selector;
        return 0xffffffff;
    }
}
