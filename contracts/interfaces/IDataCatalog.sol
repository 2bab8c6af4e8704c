// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Quanchenglian data catalog
/// @notice Data resources by `resource = keccak256(code)` (SPEC §2): which PROVIDER issues them and
/// how sensitive they are (1 public … 4 highly sensitive). Sensitivity 3 and 4 (sensitive personal
/// information) can only be granted by naming the resource: a grant's wildcard never covers them.
interface IDataCatalog {
    /// @param provider the PROVIDER that issues it (zero: not in the catalog)
    /// @param sensitivity 1 public … 4 highly sensitive
    /// @param registeredAt block number of {registerResource}
    /// @param loweredAt block number of the last {updateResource} that moved the sensitivity from
    /// 3 or more to 2 or less (0 if never): a wildcard grant recorded before it never covers it
    struct Resource {
        address provider;
        uint8 sensitivity;
        uint40 registeredAt;
        uint40 loweredAt;
    }

    /// @notice The resource id is already in the catalog.
    error DataCatalogResourceExists(bytes32 resource);
    /// @notice The resource id is not in the catalog.
    error DataCatalogUnknownResource(bytes32 resource);
    /// @notice Sensitivity must be 1–4.
    error DataCatalogInvalidSensitivity(uint8 sensitivity);
    /// @notice The provider is not an active PROVIDER member.
    error DataCatalogInvalidProvider(address provider);
    /// @notice The reserved wildcard id cannot be a catalog entry.
    error DataCatalogReservedId(bytes32 resource);

    /// @notice A resource entered the catalog; `code` and `name` are public catalog text.
    event ResourceRegistered(bytes32 indexed resource, address indexed provider, uint8 sensitivity, string code, string name);
    /// @notice A resource's provider or sensitivity changed.
    event ResourceUpdated(bytes32 indexed resource, address indexed provider, uint8 sensitivity);

    /// @notice Registers `code` (resource id `keccak256(code)`). ADMIN only.
    function registerResource(string calldata code, string calldata name, address provider, uint8 sensitivity) external;

    /// @notice Changes a resource's provider or sensitivity. ADMIN only.
    function updateResource(bytes32 resource, address provider, uint8 sensitivity) external;

    /// @notice The catalog entry of `resource` (provider zero when unknown).
    function resourceInfo(bytes32 resource) external view returns (Resource memory);
}
