"""medst.networks.layers"""
