"""medst.inferers"""
