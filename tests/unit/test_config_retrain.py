"""The ``[model.retrain]`` table: defaults, every key, and the message for each bad value."""

from __future__ import annotations

import pytest

from core import config
from core.config import RetrainConfig
from core.errors import ConfigError

HEAD = '[[model]]\nname = "m"\nrepo = "/tmp"\n'
DOCKER = '[[model.target]]\nname = "edge"\nkind = "docker"\n'
K8S = (
    '[[model.target]]\nname = "prod"\nkind = "kubernetes"\ncontext = "c"\n'
    'namespace = "ml"\ndeployment = "m"\n'
)


def retrain_of(body: str, targets: str = "") -> RetrainConfig | None:
    return config.parse(f"{HEAD}{targets}[model.retrain]\n{body}\n", environ={}).models[0].retrain


def problems(body: str, targets: str = "") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config.parse(f"{HEAD}{targets}[model.retrain]\n{body}\n", environ={})
    return caught.value.problems


def test_no_table_means_no_retraining() -> None:
    assert config.parse(HEAD, environ={}).models[0].retrain is None


def test_defaults_of_a_command_alone() -> None:
    assert retrain_of('command = "python train.py"') == RetrainConfig(
        command="python train.py",
        executor="local",
        window=6 * 3600.0,
        timeout=3600.0,
        auto_release=False,
        target="",
        image="",
        job_template="deploy/retrain-job.yaml",
    )


def test_every_key() -> None:
    body = (
        'command = "sh retrain.sh"\nexecutor = "kubernetes"\nwindow = "2h30m"\n'
        'timeout = "45m"\nauto_release = true\ntarget = "prod"\n'
        'image = "registry:5000/churn-train:1"\njob_template = "k8s/job.yaml"'
    )
    assert retrain_of(body, K8S) == RetrainConfig(
        command="sh retrain.sh",
        executor="kubernetes",
        window=9000.0,
        timeout=2700.0,
        auto_release=True,
        target="prod",
        image="registry:5000/churn-train:1",
        job_template="k8s/job.yaml",
    )


def test_docker_without_a_target_name_uses_the_models_docker_target() -> None:
    found = retrain_of('command = "x"\nexecutor = "docker"', DOCKER)
    assert found is not None and (found.executor, found.target) == ("docker", "")


@pytest.mark.parametrize(
    ("body", "targets", "expected"),
    [
        ('window = "1h"', "", 'model[0].retrain.command: required field missing'),
        ("command = 3", "", "model[0].retrain.command: expected a string, got integer 3"),
        (
            'command = "x"\nexecutor = "slurm"', "",
            'model[0].retrain.executor: unknown value "slurm" (expected local, docker, kubernetes)',
        ),
        ('command = "x"\nwindow = 0', "", "model[0].retrain.window: must be longer than 0s"),
        ('command = "x"\ntimeout = "0s"', "", "model[0].retrain.timeout: must be longer than 0s"),
        (
            'command = "x"\nwindow = "soon"', "",
            'model[0].retrain.window: invalid duration "soon" (expected e.g. "250ms", "30s", '
            '"5m", "1h30m", "2d" or a number of seconds)',
        ),
        (
            'command = "x"\nauto_release = "yes"', "",
            'model[0].retrain.auto_release: expected true or false, got string "yes"',
        ),
        (
            'command = "x"\ncmd = "y"', "",
            'model[0].retrain.cmd: unknown key (did you mean "command"?)',
        ),
        (
            'command = "x"\nexecutor = "docker"', "",
            'model[0].retrain.executor: "docker" needs a docker target of this model to run on',
        ),
        (
            'command = "x"\nexecutor = "kubernetes"\ntarget = "edge"', DOCKER + K8S,
            'model[0].retrain.target: names no kubernetes target of this model: "edge"',
        ),
    ],
)  # fmt: skip
def test_each_bad_value_is_named_with_its_key(body: str, targets: str, expected: str) -> None:
    assert problems(body, targets) == [expected]
