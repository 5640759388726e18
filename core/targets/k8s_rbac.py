"""What RBAC lets the current credentials do in a namespace, asked once per namespace.

One SelfSubjectRulesReview lists the rules that apply to the credentials in
a namespace; every Deployment of that namespace is then judged locally
(:func:`allows`), so a console following 1,000 targets of one namespace asks
the API server once a minute instead of twice per target. Answers are shared
between targets for :data:`RULES_TTL` seconds, keyed by (kubeconfig, context,
namespace). When the server says its list is incomplete (an authorizer that
cannot enumerate rules, e.g. a webhook), :func:`namespace_rules` returns None
and the caller asks a SelfSubjectAccessReview per question instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.targets.k8s_api import Api

#: Seconds a namespace's rules (or a user name) are reused.
RULES_TTL = 60.0


@dataclass(frozen=True, slots=True)
class Rule:
    """One resource rule: verbs on resources of API groups, optionally only named objects."""

    verbs: frozenset[str]
    groups: frozenset[str]
    resources: frozenset[str]
    names: frozenset[str]


def parse_rules(status: Mapping[str, Any]) -> list[Rule] | None:
    """Return the resource rules of a SelfSubjectRulesReview status, or None when incomplete."""
    if status.get("incomplete"):
        return None
    rules = []
    for raw in status.get("resourceRules") or []:
        rules.append(
            Rule(
                verbs=frozenset(raw.get("verbs") or ()),
                groups=frozenset(raw.get("apiGroups") or ()),
                resources=frozenset(raw.get("resources") or ()),
                names=frozenset(raw.get("resourceNames") or ()),
            )
        )
    return rules


def allows(rules: Sequence[Rule], verb: str, group: str, resource: str, name: str = "") -> bool:
    """Return True when one of ``rules`` allows ``verb`` on ``resource`` (named ``name``).

    A rule limited to named objects allows only requests for one of those
    names ("" asks about the whole collection, e.g. list).
    """
    for rule in rules:
        if not (rule.verbs & {verb, "*"}):
            continue
        if not (rule.groups & {group, "*"}):
            continue
        if not (rule.resources & {resource, "*"}):
            continue
        if rule.names and name not in rule.names:
            continue
        return True
    return False


class _Shared:
    """Answers reused for RULES_TTL seconds; one request at a time per key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[Hashable, threading.Lock] = {}
        self._answers: dict[Hashable, tuple[float, Any]] = {}

    def get(self, key: Hashable, fetch: Callable[[], Any]) -> Any:
        """Return the fresh answer for ``key``, calling ``fetch`` when there is none.

        Raises what ``fetch`` raises (nothing is kept then).
        """
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            kept = self._answers.get(key)
            if kept is not None and time.monotonic() - kept[0] < RULES_TTL:
                return kept[1]
            answer = fetch()
            self._answers[key] = (time.monotonic(), answer)
            return answer

    def clear(self) -> None:
        """Forget every answer."""
        with self._lock:
            self._answers.clear()


_RULES = _Shared()
_USERS = _Shared()


def namespace_rules(api: Api, key: Hashable, namespace: str, timeout: float) -> list[Rule] | None:
    """Return the rules the credentials of ``api`` have in ``namespace`` (shared under ``key``).

    None when the server's list is incomplete. Raises BackendUnavailable,
    PermissionDenied or ApiError when the review cannot be made.
    """

    def fetch() -> list[Rule] | None:
        answer = api.request(
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
            timeout=timeout,
            body={
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectRulesReview",
                "spec": {"namespace": namespace},
            },
        )
        return parse_rules(answer.get("status") or {})

    result: list[Rule] | None = _RULES.get(key, fetch)
    return result


def shared_username(key: Hashable, fetch: Callable[[], str]) -> str:
    """Return the user name kept under ``key``, asking ``fetch`` when there is none."""
    name: str = _USERS.get(key, fetch)
    return name


def forget() -> None:
    """Forget every kept rule list and user name (e.g. after credentials changed)."""
    _RULES.clear()
    _USERS.clear()
