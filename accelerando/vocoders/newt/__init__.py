"""NEWT / FastNEWT: neural waveshaping synthesis (Hayes et al., ISMIR 2021) with causal streaming."""

from .model import NEWT, NEWTState
from .streaming import NEWTStream

__all__ = ["NEWT", "NEWTState", "NEWTStream"]
