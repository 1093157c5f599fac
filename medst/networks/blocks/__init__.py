"""medst.networks.blocks"""
