"""Encoder and decoder networks."""
from .conv import ConvDecoder, ConvEncoder
from .mlp import MLPDecoder, MLPEncoder, activation, mlp

__all__ = ["ConvDecoder", "ConvEncoder", "MLPDecoder", "MLPEncoder", "activation", "mlp"]
