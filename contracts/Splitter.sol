// SPDX-License-Identifier: Apache-2.0
// Forwards the ETH it receives to two addresses (internal value transfers for the
// rtserver tests), or reverts on demand (a failed transaction).
pragma solidity ^0.8.20;

contract Splitter {
    function split(address payable a, address payable b) external payable {
        uint256 half = msg.value / 2;
        a.transfer(half);
        b.transfer(msg.value - half);
    }

    function fail() external payable {
        revert("always fails");
    }
}
