"""Samples of a Prometheus text exposition, read the way ``prometheus_client`` reads them.

The scrape source parses its endpoint's text every second; ``prometheus_client``'s
parser was a fifth of that source's CPU. :func:`simple_samples` reads the plain
form most exporters write (``# HELP``/``# TYPE`` lines, ``name{k="v"} value``
without escapes or timestamps) with a few regular expressions, grouping the
samples into families exactly as ``prometheus_client.parser`` does; any other
line makes it return None, and :func:`samples` then uses ``prometheus_client``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

#: (family type, sample name, labels, value) of one sample.
Sample = tuple[str, str, dict[str, str], float]

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*"'
_VALUE = r"[-+]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|Inf|NaN)"
_SAMPLE = re.compile(rf"({_NAME})(?:\{{((?:{_LABEL}(?:,{_LABEL})*,?)?)\}})? ({_VALUE})")
_LABEL_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"\\]*)"')
_COMMENT = re.compile(rf"# (HELP|TYPE) ({_NAME})(?: (.*))?")
#: The sample names of a family of each type (suffixes of its name), as prometheus_client has.
_SUFFIXES = {
    "counter": ("",),
    "gauge": ("",),
    "summary": ("_count", "_sum", ""),
    "histogram": ("_count", "_sum", "_bucket"),
}
#: The family types prometheus_client accepts ("untyped" is read as "unknown").
_TYPES = (
    "counter",
    "gauge",
    "summary",
    "histogram",
    "gaugehistogram",
    "unknown",
    "info",
    "stateset",
)


def simple_samples(text: str) -> list[Sample] | None:
    """Return the samples of ``text`` when every line is of the plain form, else None.

    Families follow ``prometheus_client.parser.text_string_to_metric_families``:
    a ``# HELP`` or ``# TYPE`` line starts a family, a sample whose name the
    family does not allow is an "unknown" family of its own, and the samples
    of a counter whose name lacks ``_total`` get it. Never raises.
    """
    out: list[Sample] = []
    name, typ = "", "unknown"
    allowed: tuple[str, ...] = ()
    family: list[Sample] = []

    def close() -> None:
        if typ == "counter" and not name.endswith("_total"):
            out.extend((t, n + "_total", labels, v) for t, n, labels, v in family)
        else:
            out.extend(family)

    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            comment = _COMMENT.fullmatch(line)
            if comment is None:
                return None  # another comment, or a name prometheus_client reads otherwise
            kind, candidate, rest = comment.groups()
            if kind == "HELP":
                if candidate != name:
                    close()
                    name, typ, family, allowed = candidate, "unknown", [], (candidate,)
            else:
                if rest == "untyped":
                    rest = "unknown"
                if rest not in _TYPES:
                    return None  # no type, or one prometheus_client refuses
                if candidate != name:
                    close()
                    name, family = candidate, []
                typ = rest
                allowed = tuple(name + suffix for suffix in _SUFFIXES.get(typ, ("",)))
            continue
        sample = _SAMPLE.fullmatch(line)
        if sample is None:
            return None
        sample_name, label_text, value = sample.groups()
        pairs = _LABEL_PAIR.findall(label_text) if label_text else []
        labels = dict(pairs)
        if len(labels) != len(pairs):
            return None  # a repeated label name: prometheus_client's verdict
        if sample_name not in allowed:
            close()
            name, typ, family, allowed = "", "unknown", [], ()
        family.append((typ, sample_name, labels, float(value)))
    close()
    return out


def samples(text: str) -> Iterator[Sample]:
    """Yield the samples of ``text`` (see :func:`simple_samples`), with their family's type.

    Raises ValueError when the text does not parse (``prometheus_client``'s verdict).
    """
    simple = simple_samples(text)
    if simple is not None:
        yield from simple
        return
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            yield family.type, sample.name, sample.labels, float(sample.value)
