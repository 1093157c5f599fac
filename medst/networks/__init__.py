"""medst.networks"""
