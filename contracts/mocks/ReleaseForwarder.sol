// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title ReleaseForwarder (test mock, never deployed by the platform)
/// @notice Forwards a call to `target` and bubbles its revert: a release sent through another
/// contract, whose top-level calldata is not the ledger's.
contract ReleaseForwarder {
    function forward(address target, bytes calldata data) external returns (bytes memory) {
        (bool ok, bytes memory ret) = target.call(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 32), mload(ret))
            }
        }
        return ret;
    }
}
