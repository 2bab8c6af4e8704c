// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IDataCatalog} from "./interfaces/IDataCatalog.sol";
import {MemberRegistry} from "./MemberRegistry.sol";
import {Roles} from "./Roles.sol";

/// @title DataCatalog
/// @notice See {IDataCatalog}. Part of {ConsentLedger}.
abstract contract DataCatalog is IDataCatalog, MemberRegistry {
    /// @dev In a grant's resource list, covers every catalog resource of sensitivity 1–2 that was
    /// registered, and last lowered to 1–2, at or before the grant's block (see {ConsentLedger}).
    bytes32 public constant WILDCARD = keccak256("*");
    /// @dev Resources of this sensitivity or more must be named in a grant.
    uint8 internal constant _NAMED_ONLY_SENSITIVITY = 3;

    mapping(bytes32 resource => Resource) internal _resources;

    /// @inheritdoc IDataCatalog
    function registerResource(string calldata code, string calldata name, address provider, uint8 sensitivity)
        external
        onlyAdmin
    {
        bytes32 resource = keccak256(bytes(code));
        if (resource == WILDCARD) revert DataCatalogReservedId(resource);
        if (_resources[resource].provider != address(0)) revert DataCatalogResourceExists(resource);
        _checkEntry(provider, sensitivity);
        _resources[resource] =
            Resource({provider: provider, sensitivity: sensitivity, registeredAt: uint40(block.number), loweredAt: 0});
        emit ResourceRegistered(resource, provider, sensitivity, code, name);
    }

    /// @inheritdoc IDataCatalog
    function updateResource(bytes32 resource, address provider, uint8 sensitivity) external onlyAdmin {
        Resource storage entry = _resources[resource];
        if (entry.provider == address(0)) revert DataCatalogUnknownResource(resource);
        _checkEntry(provider, sensitivity);
        if (entry.sensitivity >= _NAMED_ONLY_SENSITIVITY && sensitivity < _NAMED_ONLY_SENSITIVITY) {
            entry.loweredAt = uint40(block.number);
        }
        entry.provider = provider;
        entry.sensitivity = sensitivity;
        emit ResourceUpdated(resource, provider, sensitivity);
    }

    /// @inheritdoc IDataCatalog
    function resourceInfo(bytes32 resource) external view returns (Resource memory) {
        return _resources[resource];
    }

    function _checkEntry(address provider, uint8 sensitivity) private view {
        if (sensitivity == 0 || sensitivity > 4) revert DataCatalogInvalidSensitivity(sensitivity);
        if (!isActive(provider, Roles.PROVIDER)) revert DataCatalogInvalidProvider(provider);
    }
}
