"""medst.bundle"""
