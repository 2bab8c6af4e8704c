// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {IConsentLedger} from "./interfaces/IConsentLedger.sol";
import {IMemberRegistry} from "./interfaces/IMemberRegistry.sol";

/// @title ConsentLedger
/// @notice See {IConsentLedger}.
contract ConsentLedger is IConsentLedger, EIP712 {
    /// @dev keccak256("Grant(address subject,address grantee,bytes32[] resources,bytes32 purpose,uint64 validFrom,uint64 validUntil,uint32 maxUses,uint256 nonce,uint256 deadline)")
    bytes32 public constant GRANT_TYPEHASH =
        keccak256(
            "Grant(address subject,address grantee,bytes32[] resources,bytes32 purpose,uint64 validFrom,uint64 validUntil,uint32 maxUses,uint256 nonce,uint256 deadline)"
        );

    IMemberRegistry private immutable _registry;

    constructor(IMemberRegistry registry_) EIP712("Quanchenglian", "1") {
        _registry = registry_;
    }

    /// @inheritdoc IConsentLedger
    function registry() external view returns (IMemberRegistry) {
        return _registry;
    }

    /// @inheritdoc IConsentLedger
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @inheritdoc IConsentLedger
    function hashGrant(Grant calldata grant) public view returns (bytes32) {
        return
            _hashTypedDataV4(
                keccak256(
                    abi.encode(
                        GRANT_TYPEHASH,
                        grant.subject,
                        grant.grantee,
                        keccak256(abi.encodePacked(grant.resources)),
                        grant.purpose,
                        grant.validFrom,
                        grant.validUntil,
                        grant.maxUses,
                        grant.nonce,
                        grant.deadline
                    )
                )
            );
    }
}
