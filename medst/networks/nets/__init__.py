"""medst.networks.nets"""
