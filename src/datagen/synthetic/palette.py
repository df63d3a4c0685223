"""Named object colours.

Names are plain colour words so captions and questions ("the red sphere") stay unambiguous: every object in
a clip gets a different colour, and the colours are saturated so none blends into the grey ground or the sky.
"""

from __future__ import annotations

COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.08, 0.08),
    "green": (0.10, 0.65, 0.15),
    "blue": (0.10, 0.25, 0.90),
    "yellow": (0.95, 0.85, 0.10),
    "orange": (1.00, 0.50, 0.00),
    "purple": (0.50, 0.12, 0.70),
    "cyan": (0.00, 0.80, 0.85),
    "magenta": (0.95, 0.10, 0.70),
    "white": (0.95, 0.95, 0.95),
}
