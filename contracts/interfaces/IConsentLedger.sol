// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IMemberRegistry} from "./IMemberRegistry.sol";

/// @title Quanchenglian consent ledger
/// @notice Subjects' signed grants, revocations and pauses, and the release receipts that prove
/// every release was covered by one. Messages are EIP-712 typed data under the domain
/// `{name: "Quanchenglian", version: "1", chainId, verifyingContract: this}` (SPEC §3).
interface IConsentLedger {
    /// @notice The terms a subject signs (SPEC §3 `Grant`).
    struct Grant {
        address subject;
        address grantee;
        bytes32[] resources;
        bytes32 purpose;
        uint64 validFrom;
        uint64 validUntil;
        uint32 maxUses;
        uint256 nonce;
        uint256 deadline;
    }

    /// @notice The member registry this ledger checks parties against.
    function registry() external view returns (IMemberRegistry);

    /// @notice The EIP-712 domain separator of this ledger.
    function domainSeparator() external view returns (bytes32);

    /// @notice The EIP-712 digest of `grant`, which is also its grant id.
    function hashGrant(Grant calldata grant) external view returns (bytes32);
}
