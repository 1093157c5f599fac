"""medst.transforms"""
