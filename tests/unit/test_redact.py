"""redact_url keeps credentials in configured URLs out of every message that names them."""

from __future__ import annotations

import string
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import config as config_mod
from core.errors import BackendUnavailable, ConfigError
from core.metrics.prometheus import PrometheusSource
from core.metrics.scrape import ScrapeSource
from core.sanitize import REDACTED, redact_url
from core.services.doctor import doctor

SECRET = "s3cret"
URL = f"http://user:{SECRET}@127.0.0.1:1/"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (URL, f"http://user:{REDACTED}@127.0.0.1:1/"),
        (
            "GET https://ghp_abc123@github.com/o/r.git failed",
            f"GET https://{REDACTED}@github.com/o/r.git failed",
        ),
        ("tcp://admin:pw@10.0.0.5:2375", f"tcp://admin:{REDACTED}@10.0.0.5:2375"),
        ("http://a:b@c@host/x", f"http://a:{REDACTED}@host/x"),
        (
            "http://h/api?query=up&token=abc&step=1",
            f"http://h/api?query=up&token={REDACTED}&step=1",
        ),
        ("refused: access_token=abc def", f"refused: access_token={REDACTED} def"),
        (
            "https://s3/b/k?X-Amz-Credential=AK%2F1&X-Amz-Signature=ff",
            f"https://s3/b/k?X-Amz-Credential={REDACTED}&X-Amz-Signature={REDACTED}",
        ),
        ("serve --api-key=abc --port 80", f"serve --api-key={REDACTED} --port 80"),
        ("Authorization: Bearer abcdef123", f"Authorization: Bearer {REDACTED}"),
    ],
)
def test_credentials_are_redacted(text: str, expected: str) -> None:
    assert redact_url(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "ssh://git@github.com/o/r.git",  # a user name, not a secret
        "http://127.0.0.1:9090/api/v1/query?query=up&step=15",
        "unix:///var/run/docker.sock",
        "author=ada commit=abc123",
        "user@example.com wrote to a:b@c",  # no scheme: not a URL
        "",
    ],
)
def test_text_without_credentials_is_unchanged(text: str) -> None:
    assert redact_url(text) == text


_password = st.text(
    alphabet=string.ascii_letters + string.digits + "-._~!$&'()*+,;=%:@", min_size=4
)


@given(
    scheme=st.sampled_from(["http", "https", "tcp", "ssh", "postgres"]),
    user=st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=8),
    password=_password,
    before=st.text(alphabet=string.printable, max_size=20),
    after=st.sampled_from(["", "/", "/metrics", "/p?x=1", " and more", "\n"]),
)
def test_a_password_in_any_url_never_survives(
    scheme: str, user: str, password: str, before: str, after: str
) -> None:
    text = f"{before} {scheme}://{user}:{password}@host.example:8080{after}"
    out = redact_url(text)
    assert f":{password}@" not in out
    assert f"{scheme}://{user}:{REDACTED}@host.example:8080" in out


@given(st.text(alphabet=string.printable, max_size=200))
def test_redacting_twice_changes_nothing_more(text: str) -> None:
    once = redact_url(text)
    assert redact_url(once) == once


# --------------------------------------------------------------------------
# Every message that names a configured URL


def _config(tmp_path: Path, url: str) -> config_mod.Config:
    text = textwrap.dedent(
        f"""\
        [[model]]
        name = "churn"
        repo = "{tmp_path}"

          [model.metrics]
          source = "scrape"
          url = "{url}"
        """
    )
    return config_mod.parse(text, source=tmp_path / "mrc.toml")


def test_doctor_lines_never_hold_the_password(tmp_path: Path) -> None:
    lines = doctor(_config(tmp_path, URL + "metrics"), timeout=2.0)
    metrics = [line for line in lines if line.backend == "scrape"]
    assert metrics and not metrics[0].ok
    for line in lines:
        assert SECRET not in line.name + line.detail
    assert f"user:{REDACTED}@127.0.0.1:1" in metrics[0].name


def test_a_rejected_url_is_named_without_its_password(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(tmp_path, f"ftp://user:{SECRET}@127.0.0.1:1/")
    assert "metrics.url" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_scrape_errors_never_hold_the_password() -> None:
    source = ScrapeSource(URL + "metrics", timeout=2.0)
    try:
        with pytest.raises(BackendUnavailable) as caught:
            source.scrape_once()
    finally:
        source.close()
    assert "127.0.0.1:1" in str(caught.value)
    assert SECRET not in str(caught.value) and SECRET not in source.last_error


def test_prometheus_errors_never_hold_the_password() -> None:
    source = PrometheusSource(URL, timeout=2.0)
    try:
        with pytest.raises(BackendUnavailable) as caught:
            source.instant_query("up")
    finally:
        source.close()
    assert "127.0.0.1:1" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_docker_connection_errors_never_hold_the_password() -> None:
    from core.docker_api import docker_errors

    engine = f"tcp://user:{SECRET}@127.0.0.1:1"
    with pytest.raises(BackendUnavailable) as caught, docker_errors(engine):
        raise OSError(f"cannot connect to {engine}")
    assert SECRET not in str(caught.value)
