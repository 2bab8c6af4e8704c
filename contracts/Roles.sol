// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Role bits of the member registry (SPEC §1)
library Roles {
    uint8 internal constant ADMIN = 1;
    uint8 internal constant PROVIDER = 2;
    uint8 internal constant CONSUMER = 4;
    uint8 internal constant AUDITOR = 8;
    uint8 internal constant SUBJECT = 16;
    /// @dev Every defined role; any other bit is invalid.
    uint8 internal constant ALL = 31;
}
