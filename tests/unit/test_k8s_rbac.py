"""Judging RBAC questions locally from a SelfSubjectRulesReview's rules."""

from __future__ import annotations

from core.targets.k8s_rbac import Rule, allows, parse_rules


def _rules(*raw: dict[str, list[str]]) -> list[Rule]:
    rules = parse_rules({"resourceRules": list(raw)})
    assert rules is not None
    return rules


def test_incomplete_rules_are_no_answer() -> None:
    assert parse_rules({"incomplete": True, "resourceRules": []}) is None


def test_no_rules_allow_nothing() -> None:
    assert not allows(_rules(), "patch", "apps", "deployments", "m")
    assert parse_rules({}) == []


def test_wildcards_allow_everything() -> None:
    rules = _rules({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})
    assert allows(rules, "patch", "apps", "deployments", "m")
    assert allows(rules, "list", "apps", "replicasets")


def test_verb_group_and_resource_must_all_match() -> None:
    rules = _rules({"verbs": ["get", "list"], "apiGroups": ["apps"], "resources": ["deployments"]})
    assert allows(rules, "list", "apps", "deployments")
    assert not allows(rules, "patch", "apps", "deployments", "m")
    assert not allows(rules, "list", "", "deployments")
    assert not allows(rules, "list", "apps", "replicasets")
    assert not allows(rules, "list", "apps", "deployments/scale")


def test_named_rules_allow_only_those_names() -> None:
    rules = _rules(
        {
            "verbs": ["patch", "list"],
            "apiGroups": ["apps"],
            "resources": ["deployments"],
            "resourceNames": ["a"],
        }
    )
    assert allows(rules, "patch", "apps", "deployments", "a")
    assert not allows(rules, "patch", "apps", "deployments", "b")
    assert not allows(rules, "list", "apps", "deployments")  # the collection is not "a"
