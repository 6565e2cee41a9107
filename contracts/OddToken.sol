// SPDX-License-Identifier: Apache-2.0
// An old-style token for the rtserver tests: `symbol()` returns bytes32 (like MKR) and
// there is no `decimals()` (the call reverts). Emits standard ERC-20 Transfer events.
pragma solidity ^0.8.20;

contract OddToken {
    bytes32 public symbol = "ODD";
    mapping(address => uint256) public balanceOf;

    event Transfer(address indexed from, address indexed to, uint256 value);

    constructor(uint256 supply) {
        balanceOf[msg.sender] = supply;
    }

    function transfer(address to, uint256 value) external returns (bool) {
        require(balanceOf[msg.sender] >= value, "balance");
        balanceOf[msg.sender] -= value;
        balanceOf[to] += value;
        emit Transfer(msg.sender, to, value);
        return true;
    }
}
