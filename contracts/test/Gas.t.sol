// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {console} from "hardhat/console.sol";
import {IConsentLedger} from "../interfaces/IConsentLedger.sol";
import {LedgerFixture} from "./LedgerFixture.sol";

/// @dev Gas figures of the budget (logged; run with `test solidity contracts/test/Gas.t.sol`).
/// Each test is its own transaction after setUp, so storage and accounts start cold, as in a
/// real transaction. A transaction's total = execution measured here − the test's CALL to the
/// ledger (cold account access, 2,600) + 21,000 + calldata (4 per zero byte, 16 per other byte).
contract GasTest is LedgerFixture {
    IConsentLedger.Grant internal first;

    function setUp() public override {
        super.setUp();
        first = _grant();
        first.nonce = 1;
        _record(first); // the subject's nonce word 0 is now in use
        _release(first, R_PUBLIC, bytes32(uint256(0))); // the grantee's request word 0 is in use
    }

    function test_gas_recordGrantOneNamedResource() public {
        IConsentLedger.Grant memory g = _grant();
        g.nonce = 2; // same nonce word as the recorded grant
        bytes memory sig = _signGrant(SUBJECT_KEY, g);
        bytes memory data = abi.encodeCall(ledger.recordGrant, (g, sig));
        address target = address(ledger);
        uint256 before = gasleft();
        (bool ok,) = target.call(data);
        uint256 used = before - gasleft();
        require(ok, "recorded");
        uint256 total = used - 2_600 + 21_000 + _calldataGas(data);
        console.log("recordGrant execution (incl. the test's CALL)", used);
        console.log("recordGrant calldata gas", _calldataGas(data));
        console.log("recordGrant estimated tx total", total);
    }

    function test_gas_recordReleases50() public {
        uint256 n = 50;
        IConsentLedger.ReleaseItem[] memory items = new IConsentLedger.ReleaseItem[](n);
        for (uint256 i; i < n; ++i) {
            items[i] = _item(first, CONSUMER_KEY, R_PUBLIC, bytes32(i + 1), type(uint256).max);
        }
        bytes memory data = abi.encodeCall(ledger.recordReleases, (items));
        address target = address(ledger);
        uint256 before = gasleft();
        (bool ok, bytes memory ret) = target.call(data);
        uint256 used = before - gasleft();
        require(ok && abi.decode(ret, (uint256)) == (1 << n) - 1, "all recorded");
        uint256 total = used - 2_600 + 21_000 + _calldataGas(data);
        console.log("recordReleases(50) execution (incl. the test's CALL)", used);
        console.log("recordReleases(50) calldata gas", _calldataGas(data));
        console.log("recordReleases(50) estimated tx total", total);
        console.log("per item (total / 50)", total / n);
        console.log("per item without the 21,000 base", (total - 21_000) / n);
    }

    function _calldataGas(bytes memory data) internal pure returns (uint256 gas) {
        for (uint256 i; i < data.length; ++i) {
            gas += data[i] == 0 ? 4 : 16;
        }
    }
}
