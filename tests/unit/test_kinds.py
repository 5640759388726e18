"""The table of target kinds is the one place the console learns what a kind means."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core import config as config_mod
from core.config import Config, DockerTargetConfig, ModelConfig
from core.domain import Artifact, Phase, RolloutState
from core.errors import ConfigError, NotFound, OperationFailed
from core.journal import Journal
from core.services import actions
from core.services.doctor import doctor
from core.services.workspace import Workspace
from core.targets import kinds
from core.targets.base import Target
from core.targets.kinds import KINDS, TargetKind

TOML = {
    "kubernetes": 'kind = "kubernetes"\ndeployment = "churn"',
    "docker": 'kind = "docker"\nbase_url = "tcp://builder:2375"',
    "local": 'kind = "local"\ncommand = "{python} server.py {port}"\nport = 8080',
}


def test_the_table_covers_every_kind_the_configuration_accepts(tmp_path: Path) -> None:
    assert set(KINDS) == set(config_mod.TARGET_KINDS) == set(TOML)
    for name, body in TOML.items():
        path = tmp_path / f"{name}.toml"
        target = textwrap.indent(f'name = "t"\n{body}\n', "  ")
        path.write_text(f'[[model]]\nname = "churn"\nrepo = "."\n\n  [[model.target]]\n{target}')
        (parsed,) = config_mod.load_file(path).models[0].targets
        assert KINDS[name].name == name
        assert type(parsed) is KINDS[name].config_type


def test_opening_a_target_does_not_contact_the_backend(tmp_path: Path) -> None:
    model = ModelConfig(name="churn", repo=tmp_path, targets=(
        DockerTargetConfig(name="edge", kind="docker", base_url="tcp://nowhere:2375", keep=1),
    ))  # fmt: skip
    ws = Workspace(Config(models=(model,)), state_dir=tmp_path / "state")
    target = ws.target("churn", "edge")
    assert (target.kind, target.model, target.name) == ("docker", "churn", "edge")
    assert isinstance(target, Target)
    assert ws.image_builder("churn").base_url == "tcp://nowhere:2375"


# ------------------------------------------------------------------ a new kind


@dataclass(frozen=True, slots=True)
class BundleTargetConfig:
    name: str
    kind: str = "bundle"
    production: bool = False
    read_only: bool = False
    console_read_only: bool = False
    engine: str = "tcp://bundler:2375"

    @property
    def read_only_effective(self) -> bool:
        return self.read_only or self.console_read_only


class BundleTarget(Target):
    """Only what the protocol requires; the optional capabilities keep their defaults."""

    kind = "bundle"

    def __init__(self, model: str, name: str) -> None:
        self.model, self.name = model, name
        self.calls: list[str] = []

    def status(self) -> RolloutState:
        return RolloutState(self.model, self.name, self.kind, Phase.COMPLETE, revision=1)

    def restart(self, *, expected: object = None) -> None:
        self.calls.append("restart")

    def close(self) -> None:
        pass


class BundleRule:
    def for_commit(self, model: ModelConfig, sha: str) -> Artifact:
        return Artifact(commit=sha, image=f"bundle/{sha[:4]}")

    def skip_build(self, model: ModelConfig) -> str:
        return "bundles are uploaded, not built"

    def from_input(self, value: str, resolve: Callable[[str], str]) -> Artifact:
        return Artifact(image=f"bundle/{value}")


checked: list[tuple[str, float]] = []


def check_bundle(target: BundleTargetConfig, timeout: float) -> str:
    checked.append((target.name, timeout))
    return "bundler answers"


BUNDLE = TargetKind(
    name="bundle",
    config_type=BundleTargetConfig,  # type: ignore[arg-type]
    open=lambda model, target, state_dir: BundleTarget(model.name, target.name),
    doctor_label=lambda t: f"engine {t.engine}",
    doctor_check=check_bundle,
    artifact=BundleRule(),
    build_engine=lambda t: t.engine,
)


@pytest.fixture
def bundle(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Workspace]:
    monkeypatch.setitem(KINDS, "bundle", BUNDLE)  # type: ignore[arg-type]
    checked.clear()
    model = ModelConfig(
        name="churn",
        repo=tmp_path,
        targets=(BundleTargetConfig(name="shelf"),),  # type: ignore[arg-type]
    )
    journal = Journal(tmp_path / "journal.sqlite3")
    ws = Workspace(Config(models=(model,)), journal=journal, state_dir=tmp_path / "state")
    yield ws
    ws.close()
    journal.close()


def test_a_kind_added_to_the_table_is_opened_checked_and_released_by_its_entry(
    bundle: Workspace,
) -> None:
    target = bundle.target("churn", "shelf")
    assert isinstance(target, BundleTarget) and bundle.target("churn") is target

    lines = [line for line in doctor(bundle.config, timeout=3.0) if line.backend == "bundle"]
    assert [(line.name, line.ok) for line in lines] == [
        ("churn/shelf: engine tcp://bundler:2375", True)
    ]
    assert lines[0].detail.startswith("bundler answers")
    assert checked == [("shelf", 3.0)]

    assert bundle.image_builder("churn").base_url == "tcp://bundler:2375"
    assert bundle.artifact_from_input("churn", "shelf", "v7") == Artifact(image="bundle/v7")
    assert kinds.artifact_rule("bundle").skip_build(bundle.model("churn"))


def test_optional_capabilities_have_their_declared_defaults(bundle: Workspace) -> None:
    target = bundle.target("churn", "shelf")
    with pytest.raises(OperationFailed, match="pause is not supported by bundle targets"):
        actions.run_simple(bundle.journal, target, "pause")
    with pytest.raises(OperationFailed, match="resume is not supported by bundle targets"):
        target.resume()
    assert list(target.start()) == []
    target.stop_all()  # nothing runs under the console: nothing to stop, no error
    actions.run_simple(bundle.journal, target, "restart", reason="stuck")
    assert target.calls == ["restart"]
    assert [(e.action, e.outcome.value) for e in bundle.journal.entries("churn")] == [
        ("restart", "done"),
        ("pause", "failed"),
    ]  # newest first


def test_run_simple_refuses_an_action_outside_its_table(bundle: Workspace) -> None:
    target = bundle.target("churn", "shelf")
    with pytest.raises(ValueError, match="expected pause, resume, restart"):
        actions.run_simple(bundle.journal, target, "close")
    assert bundle.journal.entries("churn") == []


def test_an_unknown_kind_is_a_configuration_error(tmp_path: Path) -> None:
    model = ModelConfig(name="churn", repo=tmp_path, targets=(
        BundleTargetConfig(name="shelf", kind="crate"),  # type: ignore[arg-type]
    ))  # fmt: skip
    ws = Workspace(Config(models=(model,)), state_dir=tmp_path / "state")
    with pytest.raises(ConfigError):
        ws.target("churn", "shelf")
    with pytest.raises(NotFound):
        kinds.artifact_rule("crate")


def test_a_typed_value_is_a_commit_on_local_targets_and_an_image_elsewhere(
    tmp_path: Path,
) -> None:
    from tests.support.repos import BASE_TIME, commit_files, init_repo

    repo = init_repo(tmp_path / "repo")
    commit_files(repo, {"README.md": "x\n"}, "first", when=BASE_TIME)
    path = tmp_path / "mrc.toml"
    path.write_text(
        f'[[model]]\nname = "churn"\nrepo = "{repo}"\n\n'
        '  [[model.target]]\n  name = "local"\n' + textwrap.indent(TOML["local"], "  ") + "\n\n"
        '  [[model.target]]\n  name = "edge"\n' + textwrap.indent(TOML["docker"], "  ") + "\n"
    )
    ws = Workspace(config_mod.load_file(path), state_dir=tmp_path / "state")
    try:
        head = ws.resolve_commit("churn", "HEAD")
        assert ws.artifact_from_input("churn", "local", "HEAD") == Artifact(commit=head)
        assert ws.artifact_from_input("churn", "edge", "reg/churn:v2") == Artifact(
            image="reg/churn:v2"
        )
        with pytest.raises(NotFound):
            ws.artifact_from_input("churn", "local", "no-such-ref")
    finally:
        ws.close()
