"""The values a number of the config may take. A method declares the ranges of its own config
section with these (`MethodSpec.ranges`); the harness checks every number against its range before
anything is launched (bench/config/ranges.py)."""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Range:
    """The values a number may take; each element of a tuple of numbers is checked alone."""

    low: float
    high: float = math.inf
    low_open: bool = False  # (low, ... rather than [low, ...
    high_open: bool = False
    why: str = ""  # said after the range in the message, when the bound is not obvious

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        low, high = _number(self.low), _number(self.high)
        if self.high == math.inf:
            return f"{'>' if self.low_open else '>='} {low}"
        return f"in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"


def _number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e16 else f"{v:g}"


POSITIVE, NON_NEGATIVE, COUNT = Range(0, low_open=True), Range(0), Range(1)
FRACTION = Range(0, 1, low_open=True, high_open=True)  # (0, 1)
SHARE = Range(0, 1, low_open=True)  # (0, 1]
MOMENTUM = Range(0, 1)  # an EMA momentum; 1 freezes the teacher
DEPTH, WIDTH = Range(1, 64), Range(1, 8192)  # layers and widths beyond any ViT's (ViT-g: 40 blocks, 1408 wide)
