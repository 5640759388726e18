"""One Deployment watch serves many targets: first a list, then one batch per change.

The API is a scripted stand-in (the same calls against the real control plane
are in tests/integration/test_console_k8s.py); this covers the error path a
live cluster rarely shows on demand: 410 Gone mid-watch, which must re-list.
"""

from __future__ import annotations

from typing import Any

import pytest

from core.cancel import CancelToken
from core.errors import BackendUnavailable, NotFound
from core.targets.kubernetes import KubernetesTarget, watch_states


def dep(name: str, image: str, rv: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "resourceVersion": rv, "generation": 1},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"spec": {"containers": [{"name": "model", "image": image}]}},
        },
        "status": {
            "observedGeneration": 1,
            "replicas": 1,
            "updatedReplicas": 1,
            "availableReplicas": 1,
            "readyReplicas": 1,
        },
    }


class ScriptedApi:
    """Answers list_all from ``lists`` and each watch request from ``watches``, in turn."""

    context = "test"

    def __init__(self, lists: list[list[dict[str, Any]]], watches: list[Any]) -> None:
        self.lists = lists
        self.watches = watches
        self.calls: list[tuple[str, str]] = []

    def list_all(self, path: str, **_: Any) -> tuple[list[dict[str, Any]], str]:
        self.calls.append(("list", path))
        return self.lists.pop(0), "100"

    def watch(self, path: str, *, query: Any, cancel: CancelToken, **_: Any) -> Any:
        self.calls.append(("watch", dict(query)["resourceVersion"]))
        answer = self.watches.pop(0) if self.watches else None
        if isinstance(answer, Exception):
            raise answer
        if answer is None:
            cancel.cancel()
            return iter(())
        return iter(answer)


def targets(api: ScriptedApi, *names: str) -> list[KubernetesTarget]:
    made = []
    for name in names:
        target = KubernetesTarget(name, "prod", "test", "ml", name, "model")
        target._api = api  # type: ignore[assignment]
        made.append(target)
    return made


def images(batch: list[Any]) -> dict[str, str]:
    return {t.deployment: s.image if not isinstance(s, NotFound) else "gone" for t, s in batch}


def test_first_batch_lists_every_target_then_one_batch_per_change() -> None:
    api = ScriptedApi(
        [[dep("a", "img:1", "1"), dep("b", "img:1", "2")]],
        [
            [
                {"type": "MODIFIED", "object": dep("b", "img:2", "7")},
                {"type": "MODIFIED", "object": dep("other", "img:9", "8")},
                {"type": "DELETED", "object": dep("a", "img:1", "9")},
            ]
        ],
    )
    batches = list(watch_states(targets(api, "a", "b", "missing"), CancelToken()))
    assert images(batches[0]) == {"a": "img:1", "b": "img:1", "missing": "gone"}
    assert images(batches[1]) == {"b": "img:2"}  # "other" is nobody's Deployment
    assert images(batches[2]) == {"a": "gone"}
    assert len(batches) == 3
    assert api.calls[-1] == ("watch", "9")  # resumed from the last version seen


def test_410_gone_lists_again_and_yields_every_target() -> None:
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}
    api = ScriptedApi(
        [[dep("a", "img:1", "1")], [dep("a", "img:3", "20")]],
        [[gone]],
    )
    batches = list(watch_states(targets(api, "a"), CancelToken()))
    assert [images(b) for b in batches] == [{"a": "img:1"}, {"a": "img:3"}]
    assert [c[0] for c in api.calls] == ["list", "watch", "list", "watch"]


def test_an_unreachable_server_is_raised_for_the_caller_to_fall_back() -> None:
    api = ScriptedApi([[dep("a", "img:1", "1")]], [BackendUnavailable("cannot reach test")])
    stream = watch_states(targets(api, "a"), CancelToken())
    next(stream)
    with pytest.raises(BackendUnavailable):
        next(stream)


def test_targets_of_different_namespaces_are_refused() -> None:
    api = ScriptedApi([], [])
    one, two = targets(api, "a", "b")
    two.namespace = "elsewhere"
    with pytest.raises(ValueError):
        next(watch_states([one, two], CancelToken()))
