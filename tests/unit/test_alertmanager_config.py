"""The ``[alertmanager]`` table: parsed into AlertmanagerConfig, bad keys named by path."""

from __future__ import annotations

import pytest

from core.config import parse
from core.errors import ConfigError


def test_alertmanager_table_is_read():
    config = parse(
        '[alertmanager]\nurl = "http://am:9093/"\ntimeout = "2s"\nrefresh = "30s"\n'
        'token_env = "AM_TOKEN"\nheaders = { X-Org = "ops" }\n',
        environ={"AM_TOKEN": "sekrit"},
    )
    am = config.alertmanager
    assert am is not None
    assert (am.url, am.timeout, am.refresh, am.headers) == (
        "http://am:9093",
        2.0,
        30.0,
        {"X-Org": "ops"},
    )
    assert am.token is not None and am.token.reveal() == "sekrit"
    assert "sekrit" not in repr(am)


def test_no_table_means_no_alertmanager():
    assert parse("").alertmanager is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[alertmanager]\n", "alertmanager.url: required field missing"),
        ('[alertmanager]\nurl = "am:9093"\n', "alertmanager.url: expected an http(s) URL"),
        ('[alertmanager]\nurl = "http://am"\ntimeout = "soon"\n', "alertmanager.timeout:"),
        ('[alertmanager]\nurl = "http://am"\nrefesh = "1s"\n', 'did you mean "refresh"'),
        ('[alertmanager]\nurl = "http://am"\ntoken = "x"\n', "alertmanager.token: secrets"),
    ],
)
def test_bad_keys_are_named(text, problem):
    with pytest.raises(ConfigError) as error:
        parse(text)
    assert problem in str(error.value)
