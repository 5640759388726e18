"""Clock intervals shared by the live charts' x ticks and the jumps of their window.

No Textual or plotext here: the Drift screen imports it on the first frame.
"""

from __future__ import annotations

#: Clock intervals (seconds), shortest first: the x axis of a time chart is labelled
#: at multiples of one of them, and the Drift screen's charts jump on by one of them.
CLOCK_STEPS = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800)
