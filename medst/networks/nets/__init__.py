"""medst.networks.nets: the networks; importing this module registers every named builder."""

from __future__ import annotations

from .composite_lstm import CompositeLSTM
from .contextvp import ContextVP, PMDUnit
from .convrnn import ConvRNN, RecurrentDirection, RecurrentLayer
from .e3d_lstm import E3DLSTM
from .encoder_forecaster import EncoderForecaster
from .framewise import FramewiseClassifier
from .motion_forecaster import MotionForecaster
from .prednet import PredNet
from .dilated import DilatedClassifier, DilatedResidualBlock, DilatedSegNet
from .recurrent_segnet import RecurrentSegNet
from .unetr import UNETR
from .video_classifiers import LRCN, STAM, FrameCNN, R2Plus1DBERT, TwoStreamFusion
from .video_resnet import C3D, VideoResNet, VideoSegNet

__all__ = [
    "ConvRNN",
    "RecurrentDirection",
    "RecurrentLayer",
    "RecurrentSegNet",
    "DilatedResidualBlock",
    "DilatedSegNet",
    "DilatedClassifier",
    "UNETR",
    "EncoderForecaster",
    "MotionForecaster",
    "CompositeLSTM",
    "ContextVP",
    "PMDUnit",
    "E3DLSTM",
    "PredNet",
    "C3D",
    "VideoResNet",
    "VideoSegNet",
    "FramewiseClassifier",
    "FrameCNN",
    "LRCN",
    "TwoStreamFusion",
    "R2Plus1DBERT",
    "STAM",
]
