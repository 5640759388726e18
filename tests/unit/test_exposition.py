"""The plain-exposition reader gives exactly what prometheus_client's parser gives."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from core.metrics import exposition
from core.metrics.scrape import parse_exposition


def _reference(text: str) -> list[tuple[str, str, dict[str, str], float]]:
    return [
        (family.type, s.name, s.labels, float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def _same(a: list, b: list) -> bool:  # type: ignore[type-arg]
    return len(a) == len(b) and all(
        x[:3] == y[:3] and (x[3] == y[3] or (math.isnan(x[3]) and math.isnan(y[3])))
        for x, y in zip(a, b, strict=True)
    )


def _registry_text() -> str:
    registry = CollectorRegistry()
    requests = Counter("model_requests", "Requests.", ["code"], registry=registry)
    requests.labels("200").inc(41)
    requests.labels("500").inc(2)
    Gauge("model_up", "Up.", registry=registry).set(1)
    Gauge("model_temp", "Odd.", registry=registry).set(float("nan"))
    score = Histogram("model_prediction_score", "Scores.", ["feature"], registry=registry)
    for value in (0.01, 0.3, 0.3, 0.7, 2.0):
        score.labels("age").observe(value)
    Summary("model_latency_seconds", "Latency.", registry=registry).observe(0.2)
    return generate_latest(registry).decode()


PLAIN = [
    _registry_text(),
    generate_latest().decode(),  # the default registry: process, platform and gc collectors
    "",
    "\n\n",
    "# TYPE x counter\nx 3\n",  # a counter without _total: its samples get it
    "# TYPE x_total counter\nx_total 3\nx_created 1.7e9\n",  # _created: untyped of its own
    "# HELP up Up.\nup 1\n",  # HELP alone: untyped
    'a 1\nb{k="v"} 2\nc{} -Inf\n',  # samples without HELP or TYPE
    '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_count 2\nh_sum 1.5\n'
    "other 4\n",
    '# TYPE s summary\ns{quantile="0.5"} 0.2\ns_sum 1\ns_count 5\n',
    '# TYPE g gauge\ng{a="x,y=}",b="2",} NaN\n',  # a comma and brace in a value, trailing comma
    "  # HELP z Z.  \n  z 1e-3  \n",
    '# TYPE g gauge\ng{a="x y",b=" "} 2\n',  # spaces in label values
]


@pytest.mark.parametrize("text", PLAIN)
def test_plain_text_reads_as_prometheus_client_reads_it(text: str) -> None:
    simple = exposition.simple_samples(text)
    assert simple is not None
    assert _same(simple, _reference(text))


def test_a_scrape_after_another_reads_its_new_values() -> None:
    """Each line's name and labels are read once; the values of the next scrape are its own."""
    first, second = _registry_text(), _registry_text().replace(" 41.0", " 43.0")
    for text in (first, second, first):
        simple = exposition.simple_samples(text)
        assert simple is not None
        assert _same(simple, _reference(text))
    assert ("counter", "model_requests_total", {"code": "200"}, 43.0) in (
        exposition.simple_samples(second) or []
    )
    # A line read before as a sample, now with a timestamp: not the plain form.
    assert exposition.simple_samples('g{a="1"} 2\n') is not None
    assert exposition.simple_samples('g{a="1"} 2 1700000000000\n') is None


@pytest.mark.parametrize(
    "text",
    [
        '# TYPE g gauge\ng{a="x\\"y"} 1\n',  # an escape in a label value
        "g 1 1700000000000\n",  # a timestamp
        "# some comment\ng 1\n",  # another comment
        "# EOF\n",
        "g\t1\n",
        "g 1_000\n",
    ],
)
def test_other_forms_are_left_to_prometheus_client(text: str) -> None:
    assert exposition.simple_samples(text) is None
    try:
        reference = _reference(text)
    except ValueError:
        with pytest.raises(ValueError):
            list(exposition.samples(text))
    else:
        assert _same(list(exposition.samples(text)), reference)


@pytest.mark.parametrize(
    "text",
    [
        "<html><body>Bad gateway</body></html>\n",
        "# TYPE c counter\nc -1\n",
        '# TYPE h histogram\nh_bucket{le="1"} 5\nh_bucket{le="+Inf"} 3\n',
        "# TYPE c counter\nc NaN\n",
        "# TYPE x\n",
    ],
)
def test_malformed_or_not_counts_still_raise(text: str) -> None:
    with pytest.raises(ValueError):
        parse_exposition(text)
