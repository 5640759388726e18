"""Samples of a Prometheus text exposition, read the way ``prometheus_client`` reads them.

The scrape source parses its endpoint's text every second; ``prometheus_client``'s
parser was a fifth of that source's CPU. :func:`simple_samples` reads the plain
form most exporters write (``# HELP``/``# TYPE`` lines, ``name{k="v"} value``
without escapes or timestamps) with a few regular expressions, grouping the
samples into families exactly as ``prometheus_client.parser`` does; any other
line makes it return None, and :func:`samples` then uses ``prometheus_client``.
An endpoint serves the same sample names and labels at every scrape with new
values, so each line's name and labels are read once (:data:`_HEADS`) and
only its value again.
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
#: A sample line without its value: the name and the labels.
_HEAD = re.compile(rf"({_NAME})(?:\{{((?:{_LABEL}(?:,{_LABEL})*,?)?)\}})?")
_NUMBER = re.compile(_VALUE)
#: Sample heads (a line up to the space before its value) read before: name and labels, or
#: None for a head that is not of the plain form. An endpoint serves the same heads at
#: every scrape with new values. Emptied when it holds :data:`_MAX_HEADS`; heads longer
#: than :data:`_MAX_HEAD_LEN` characters are read every time.
_HEADS: dict[str, tuple[str, dict[str, str]] | None] = {}
_MAX_HEADS = 4096
_MAX_HEAD_LEN = 512
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
    of a counter whose name lacks ``_total`` get it. The labels of a sample
    line read before are the dict given then (read them, never change them).
    Never raises.
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
        # The value has no space: the last one ends the head (a label value may hold one).
        head, _, value = line.rpartition(" ")
        try:
            read = _HEADS[head]
        except KeyError:
            read = _read_head(head)
            if len(head) <= _MAX_HEAD_LEN:
                if len(_HEADS) >= _MAX_HEADS:
                    _HEADS.clear()
                _HEADS[head] = read
        if read is None or not head or _NUMBER.fullmatch(value) is None:
            return None
        sample_name, labels = read
        if sample_name not in allowed:
            close()
            name, typ, family, allowed = "", "unknown", [], ()
        family.append((typ, sample_name, labels, float(value)))
    close()
    return out


def _read_head(head: str) -> tuple[str, dict[str, str]] | None:
    """Return the name and labels of a sample line's head (see :data:`_HEADS`), or None
    when it is not of the plain form or repeats a label name (prometheus_client's verdict)."""
    match = _HEAD.fullmatch(head)
    if match is None:
        return None
    sample_name, label_text = match.groups()
    pairs = _LABEL_PAIR.findall(label_text) if label_text else []
    labels = dict(pairs)
    return None if len(labels) != len(pairs) else (sample_name, labels)


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
