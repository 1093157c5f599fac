"""medst.networks.blocks"""

from __future__ import annotations

from .e3d_lstm import E3DLSTMCell, E3DLSTMStack
from .recurrent_cells import ConvGRUCell, ConvLSTMCell, ConvRNNCellBase, RecurrentStepBase, get_cell_class

__all__ = [
    "ConvRNNCellBase",
    "ConvLSTMCell",
    "ConvGRUCell",
    "RecurrentStepBase",
    "get_cell_class",
    "E3DLSTMCell",
    "E3DLSTMStack",
]
