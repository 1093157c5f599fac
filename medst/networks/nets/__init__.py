"""medst.networks.nets: the networks; importing this module registers every named builder."""

from __future__ import annotations

from .convrnn import ConvRNN, RecurrentDirection, RecurrentLayer
from .e3d_lstm import E3DLSTM
from .encoder_forecaster import EncoderForecaster
from .dilated import DilatedResidualBlock, DilatedSegNet
from .recurrent_segnet import RecurrentSegNet
from .unetr import UNETR

__all__ = [
    "ConvRNN",
    "RecurrentDirection",
    "RecurrentLayer",
    "RecurrentSegNet",
    "DilatedResidualBlock",
    "DilatedSegNet",
    "UNETR",
    "EncoderForecaster",
    "E3DLSTM",
]
