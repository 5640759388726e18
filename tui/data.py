"""Screen-shaped reads over the workspace, called from worker threads only."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from core.cancel import CancelToken
from core.services.workspace import Workspace

if TYPE_CHECKING:
    from core.domain import RolloutState


def target_pairs(workspace: Workspace) -> list[tuple[str, str, str]]:
    """Return (model, target, kind) for every configured target, in file order."""
    return [(m.name, t.name, t.kind) for m in workspace.config.models for t in m.targets]


def deployed_commits(workspace: Workspace, model: str) -> dict[str, list[str]]:
    """Map full sha -> names of the targets of ``model`` running it now.

    A target that cannot be reached is left out (the Rollouts screen says why).
    """
    pairs: list[tuple[str, str]] = []
    for target in workspace.model(model).targets:
        try:
            state = workspace.target(model, target.name).status()
        except Exception:
            continue
        if state.commit:
            pairs.append((target.name, state.commit))
    if not pairs:
        return {}
    return workspace.repository(model).deployed_map(pairs)


def drift_view(
    workspace: Workspace, model: str, span: timedelta, now: datetime, width: int = 120
) -> Any:
    """Return the Drift screen's view of ``model`` over the last ``span``, with about
    one point per column of charts ``width`` cells wide.

    Raises BackendUnavailable (the screen turns stale) or InvalidQuery.
    """
    from core.services.views import build_view

    return build_view(workspace, model, now - span, now, width)


# --------------------------------------------------------------------------
# Rollouts: rows, one read, and the watch that keeps them fresh


@dataclass(frozen=True)
class Row:
    """One line of the Rollouts table: a state, or the error that stands in for it."""

    model: str
    target: str
    kind: str
    state: RolloutState | None
    error: str = ""

    @property
    def key(self) -> str:
        """Return the table's row key, ``model/target``."""
        return f"{self.model}/{self.target}"


def read_row(workspace: Workspace, model: str, target: str, kind: str) -> Row:
    """Return the live state of one target as a row; an error becomes the row's text.

    Never raises (every backend call has its own timeout).
    """
    try:
        return row_of(workspace.target(model, target), kind)
    except Exception as error:
        return Row(model, target, kind, None, str(error))


def row_of(target: Any, kind: str) -> Row:
    """Return ``target``'s live state as a row; an error becomes the row's text. Never raises."""
    try:
        return Row(target.model, target.name, kind, target.status())
    except Exception as error:
        return Row(target.model, target.name, kind, None, str(error))


@dataclass
class WatchUpdate:
    """What the Rollouts watch reports at once.

    ``rows``: fresh rows by key; ``up``: keys whose watch delivers again (stop
    polling them); ``down``: keys whose watch failed, with the reason (poll them).
    """

    rows: dict[str, Row] = field(default_factory=dict)
    up: set[str] = field(default_factory=set)
    down: dict[str, str] = field(default_factory=dict)

    def absorb(self, later: WatchUpdate) -> None:
        """Fold ``later`` into this update (the later news about a key wins)."""
        self.rows.update(later.rows)
        for key in later.up:
            self.down.pop(key, None)
            self.up.add(key)
        for key, reason in later.down.items():
            self.up.discard(key)
            self.down[key] = reason


#: Seconds between attempts to restart a failed watch (doubling up to the maximum).
WATCH_RETRY = (1.0, 30.0)


def watch_rows(
    workspace: Workspace, pairs: list[tuple[str, str, str]], cancel: CancelToken
) -> Iterator[WatchUpdate]:
    """Yield fresh rows of ``pairs`` (model, target, kind) as their targets change.

    Kubernetes targets of one (kubeconfig, context, namespace) share one
    Deployment watch (:func:`core.targets.kubernetes.watch_states`, whose first
    batch lists them all); every other target is followed through its own
    :meth:`Target.watch`, its row read again on each event. Each source runs in
    a daemon thread; a source that fails reports its keys ``down`` with the
    reason and retries with a backoff (1 s doubling to 30 s). Updates that
    arrive together are merged into one. Returns once ``cancel`` is set; never
    raises.
    """
    from core.targets.kubernetes import KubernetesTarget, watch_group

    news: queue.SimpleQueue[WatchUpdate | None] = queue.SimpleQueue()
    cancel.on_cancel(lambda: news.put(None))
    groups: dict[tuple[str, str, str], list[tuple[KubernetesTarget, str]]] = {}
    for model, name, kind in pairs:
        key = f"{model}/{name}"
        try:
            target = workspace.target(model, name)
        except Exception as error:
            news.put(WatchUpdate(rows={key: Row(model, name, kind, None, str(error))}))
            news.put(WatchUpdate(down={key: str(error)}))
            continue
        if isinstance(target, KubernetesTarget):
            groups.setdefault(watch_group(target), []).append((target, kind))
        else:
            _start(_follow_target, target, kind, news, cancel)
    for members in groups.values():
        _start(_follow_namespace, members, news, cancel)
    while not cancel.cancelled:
        first = news.get()
        if first is None:
            return
        merged = first
        while True:
            try:
                more = news.get_nowait()
            except queue.Empty:
                break
            if more is None:
                return
            merged.absorb(more)
        yield merged


def _start(function: Any, *args: Any) -> None:
    threading.Thread(target=function, args=args, name="mrc-watch", daemon=True).start()


def _follow_namespace(
    members: list[tuple[Any, str]], news: queue.SimpleQueue[Any], cancel: CancelToken
) -> None:
    """Feed ``news`` from one Deployment watch serving ``members`` (target, kind)."""
    from core.domain import RolloutState
    from core.targets.kubernetes import watch_states

    kinds = {id(target): kind for target, kind in members}
    keys = [f"{target.model}/{target.name}" for target, _ in members]
    delay = WATCH_RETRY[0]
    while not cancel.cancelled:
        try:
            for batch in watch_states([target for target, _ in members], cancel):
                update = WatchUpdate()
                for target, state in batch:
                    kind = kinds[id(target)]
                    row = (
                        Row(target.model, target.name, kind, state)
                        if isinstance(state, RolloutState)
                        else Row(target.model, target.name, kind, None, str(state))
                    )
                    update.rows[row.key] = row
                    update.up.add(row.key)
                news.put(update)
                delay = WATCH_RETRY[0]
            return
        except Exception as error:
            news.put(WatchUpdate(down=dict.fromkeys(keys, str(error))))
        if cancel.wait(delay):
            return
        delay = min(delay * 2, WATCH_RETRY[1])


def _follow_target(
    target: Any, kind: str, news: queue.SimpleQueue[Any], cancel: CancelToken
) -> None:
    """Feed ``news`` from one target's own watch: its row, read again on every event."""
    key = f"{target.model}/{target.name}"
    delay = WATCH_RETRY[0]
    while not cancel.cancelled:
        news.put(WatchUpdate(rows={key: row_of(target, kind)}))
        try:
            for _event in target.watch(cancel):
                if cancel.cancelled:
                    return
                news.put(WatchUpdate(rows={key: row_of(target, kind)}, up={key}))
                delay = WATCH_RETRY[0]
            if cancel.cancelled:
                return
            reason = "the watch ended"
        except Exception as error:
            reason = str(error)
        news.put(WatchUpdate(down={key: reason}))
        if cancel.wait(delay):
            return
        delay = min(delay * 2, WATCH_RETRY[1])
