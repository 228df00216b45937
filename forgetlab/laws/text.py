"""How the laws print numbers and counts, in terminal tables and in the generated markdown."""

from __future__ import annotations

from typing import Optional


def number(value: Optional[float], digits: int = 4) -> str:
    """4 significant digits, scientific outside [1e-3, 1e5); '-' for missing; never '-0'."""
    if value is None or value != value:
        return "-"
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        text = f"{value:.{digits - 1}e}"
    else:
        text = f"{value:.{digits}g}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def fixed(value: Optional[float], decimals: int = 3, sign: bool = False) -> str:
    """Fixed decimals (for tables in nats); '-' for missing; a value that rounds to 0 prints unsigned."""
    if value is None or value != value:
        return "-"
    text = f"{value:+.{decimals}f}" if sign else f"{value:.{decimals}f}"
    if float(text) == 0:
        text = f"{0:.{decimals}f}"
    return text


def interval(low: Optional[float], high: Optional[float], decimals: Optional[int] = None) -> str:
    """'[low, high]', or 'no interval' when either bound is missing."""
    if low is None or high is None or low != low or high != high:
        return "no interval"
    if decimals is None:
        return f"[{number(low)}, {number(high)}]"
    return f"[{fixed(low, decimals)}, {fixed(high, decimals)}]"


def plural(count: int, noun: str, plural_form: Optional[str] = None) -> str:
    """'1 point', '2 points'."""
    return f"{count} {noun if count == 1 else (plural_form or noun + 's')}"
