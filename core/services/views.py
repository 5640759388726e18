"""Screen-shaped use cases over a workspace: the Drift screen's view, the current drift.

The view is computed by :class:`core.metrics.model.DriftModel` with the same
inputs the guard scores with (:meth:`Workspace.drift_inputs`: the training
reference at the deployed commit and the release markers), so the screen and
the guard judge a model against the same reference; :func:`current_drift`
asks the guard's own scorer (:meth:`Workspace.drift_probe`).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from core.domain import DriftScore, Marker
from core.errors import BackendUnavailable, InvalidQuery, NotFound
from core.metrics.model import DriftModel, DriftView
from core.metrics.scoring import DriftSettings, not_enough

if TYPE_CHECKING:
    from core.services.workspace import Workspace


class _DriftModels:
    """One DriftModel per workspace and model (it keeps the last good view)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: weakref.WeakKeyDictionary[Workspace, dict[str, DriftModel]] = (
            weakref.WeakKeyDictionary()
        )

    def get(self, workspace: Workspace, model: str) -> DriftModel | None:
        with self._lock:
            return self._models.get(workspace, {}).get(model)

    def put(self, workspace: Workspace, model: str, dm: DriftModel) -> None:
        with self._lock:
            self._models.setdefault(workspace, {})[model] = dm


_MODELS = _DriftModels()


def build_view(
    workspace: Workspace, model: str, start: datetime, end: datetime, width: int = 120
) -> DriftView:
    """Return the Drift screen's view of ``model`` over [start, end] (blocking; call from a worker).

    Markers come from the journal (every rollout and rollback the console
    made) and the targets' revision histories (refreshed every 30 s). The
    training reference is read from the repository at the commit the first
    reachable target runs. The source's background collection is started.
    Raises NotFound when the model has no metrics configured, BackendUnavailable
    when the source cannot be reached (the screen marks its data stale).
    """
    cfg = workspace.model(model)
    source = workspace.metrics(model)
    if source is None or cfg.metrics is None or not cfg.metrics.prediction_histogram:
        raise NotFound(f"model {model} has no [model.metrics] prediction_histogram configured")
    source.start()
    training, markers = workspace.drift_inputs(model)
    dm = _MODELS.get(workspace, model)
    if dm is None or dm.source is not source:
        dm = DriftModel(
            source,
            DriftSettings.from_config(cfg.metrics, cfg.drift, cfg.guard),
            training=training,
            scrape_on_refresh=False,
        )
        _MODELS.put(workspace, model, dm)
    dm.set_markers(markers())
    view = dm.refresh(start, end, width)
    if view.stale:
        raise BackendUnavailable(view.error)
    return view


@dataclass(frozen=True, slots=True)
class CurrentDrift:
    """The drift of one model's latest window against its configured reference.

    ``reference`` describes the reference ("training histograms", "1 h before
    rollout → 3 (...)", ...) or says why there is none.
    """

    model: str
    score: DriftScore
    reference: str


def current_drift(
    workspace: Workspace, model: str, end: datetime | None = None
) -> CurrentDrift | None:
    """Return the drift of ``model``'s latest ``drift.window`` up to ``end`` (now), or None
    when it has no metrics source or prediction histogram.

    Scored by the guard's scorer (:meth:`Workspace.drift_probe`). The source
    is warmed up first (:meth:`MetricsSource.warm_up`: a scrape source opened
    in this process scrapes twice, one interval apart, and so blocks for that
    interval). A source that cannot be reached or rejects the query gives
    NOT_ENOUGH_DATA with the error as reason; never raises for those.
    Raises NotFound for an unknown model.
    """
    scorer = workspace.drift_probe(model)
    if scorer is None:
        return None
    try:
        scorer.source.warm_up()
        score, described = scorer.current(end or datetime.now(UTC))
    except (BackendUnavailable, InvalidQuery) as exc:
        method = scorer.settings.method
        return CurrentDrift(model, not_enough(method, f"source error: {exc}"), "unavailable")
    return CurrentDrift(model, score, described)


# -- which action fits the drift ------------------------------------------------


@dataclass(frozen=True, slots=True)
class DriftAdvice:
    """Which action fits the drift the Drift screen shows, and why.

    ``action`` is ``"rollback"`` (the drift began at a release marker: ``u``),
    ``"retrain"`` (it began without one, the data moved: ``R``) or ``""``
    (no advice: no drift, or too little data to tell). ``marker`` is the
    release the drift began at (rollback only); ``since`` when the score
    crossed ``warn`` (None without advice).
    """

    action: str
    why: str
    marker: Marker | None = None
    since: datetime | None = None


#: Fewest drift points (windows with enough data) worth advising on.
ADVICE_MIN_POINTS = 3


def drift_advice(
    points: Sequence[tuple[float, float]],
    markers: Sequence[Marker],
    current: DriftScore,
    warn: float,
    lead: float,
    step: float = 0.0,
) -> DriftAdvice:
    """Return the action that fits drift ``points`` (unix seconds, score; oldest first).

    Pure: the same data the drift chart shows. No advice (``action`` "")
    when ``current`` has no value or is below ``warn``, when there are fewer
    than :data:`ADVICE_MIN_POINTS` points, or when the score was already
    above ``warn`` at the first point (where it began is not in the range).
    Otherwise the score crossed ``warn`` at the first point of its latest run
    at or above it: a marker at most ``lead`` seconds before that point (the
    drift window plus a step or two: a release takes a window to show), not
    after it, and with the score below ``warn`` at the marker (the last point
    at or before it: a release made while drift was already high, such as a
    rollback, is not where it began) and until the run (no drift between the
    marker and the run: an earlier drift is not this one) means rollback; none means retrain. A
    rollback marker is never where drift began (it went back to a revision
    that ran before). A release or rollback made during the drift that did
    not end it (the score still above ``warn`` ``lead`` seconds after its
    marker) means retrain as well: what was released does not explain it.
    ``step`` > 0 is the points' spacing: a gap of more than one and a half
    steps (windows without enough data, such as a restart) ends a run, so
    drift on either side of it counts apart. Never raises.
    """
    if current.value is None or len(points) < ADVICE_MIN_POINTS:
        return DriftAdvice("", "not enough data to advise")
    if current.value < warn:
        return DriftAdvice("", "no drift above warn")
    first = len(points) - 1
    gap = 1.5 * step if step > 0 else float("inf")
    while (
        first > 0
        and points[first - 1][1] >= warn
        and points[first][0] - points[first - 1][0] <= gap
    ):
        first -= 1
    if points[first][1] < warn:
        return DriftAdvice("", "no drift above warn")
    crossed = points[first][0]
    since = datetime.fromtimestamp(crossed, UTC)
    last = points[-1][0]
    # A release or rollback made while the score was above warn, a window or more ago:
    # the drift went on without it (the chart's steps may be too coarse to show a dip).
    during = [
        m
        for m in markers
        if crossed <= m.time.timestamp() <= last - lead
        and not calm_before(points, m.time.timestamp(), warn)
    ]
    if during:
        latest = max(during, key=lambda m: m.time)
        if not any(latest.time < m.time <= datetime.fromtimestamp(last, UTC) for m in markers):
            why = (
                f"drift went on after the {latest.kind} marker {latest.label}: "
                "the data moved; retrain (R)"
            )
            return DriftAdvice("retrain", why, None, since)
    if first == 0:
        return DriftAdvice("", "the drift began before this range: a longer range (]) shows where")

    def calm_at(moment: float) -> bool:
        """Below warn at ``moment`` and from then until this run (no drift in between)."""
        before = [value for t, value in points[:first] if t <= moment]
        between = [value for t, value in points[:first] if t > moment]
        return (not before or before[-1] < warn) and all(value < warn for value in between)

    near = [
        m
        for m in markers
        if m.kind != "rollback"  # back to a revision that ran before: not a new release
        and crossed - lead <= m.time.timestamp() <= crossed
        and calm_at(m.time.timestamp())
    ]
    if near:
        marker = max(near, key=lambda m: m.time)
        why = f"drift began at the {marker.kind} marker {marker.label}: roll back (u)"
        return DriftAdvice("rollback", why, marker, since)
    why = "drift began without a release: the data moved; retrain (R)"
    return DriftAdvice("retrain", why, None, since)


def calm_before(points: Sequence[tuple[float, float]], moment: float, warn: float) -> bool:
    """True when the last of ``points`` at or before ``moment`` is below ``warn`` (or none is)."""
    before = [value for t, value in points if t <= moment]
    return not before or before[-1] < warn
