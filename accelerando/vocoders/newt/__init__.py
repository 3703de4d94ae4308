"""NEWT / FastNEWT: neural waveshaping synthesis (Hayes et al., ISMIR 2021) with causal streaming,
and MelNEWT, its mel-conditioned harmonic-plus-noise speech vocoder."""

from .mel_newt import MelNEWT, MelNEWTState, MelNEWTStream
from .model import NEWT, NEWTState
from .streaming import NEWTStream

__all__ = ["MelNEWT", "MelNEWTState", "MelNEWTStream", "NEWT", "NEWTState", "NEWTStream"]
