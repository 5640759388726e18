"""Make text from outside (commit messages, process output, events) safe for a terminal.

:func:`clean_line` replaces everything a terminal would interpret (escape
sequences, control characters, bidirectional overrides) with a visible mark and
bounds the length, so the result can be shown literally and an operator can
tell that something was removed: an escape sequence becomes ``␛``, a C0 control
its Unicode control picture (BEL ``␇``, CR ``␍``, ...), DEL ``␡``, and a C1 or
bidirectional control ``\ufffd``. It does not touch Textual markup such as
``[bold]``: the UI must still build ``Text`` objects (or escape markup) itself.
"""

from __future__ import annotations

import re

#: Appended to a truncated line, followed by the number of characters dropped.
ELLIPSIS = "…"
#: What a removed escape sequence is shown as.
ESCAPE_MARK = "\u241b"  # ␛
#: What a removed C1 or bidirectional control is shown as.
CONTROL_MARK = "\ufffd"

# ESC-introduced string commands (OSC ], DCS P, SOS X, PM ^, APC _) and their
# 8-bit C1 forms, terminated by BEL, ST (ESC \ or 0x9c) or the end of the text.
_STRING_CMD = r"(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c|$)"
# Control sequences: ESC [ or 0x9b, parameters, intermediates, one final byte.
_CSI = r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"
# Other escape sequences: ESC, intermediates, one final byte (e.g. ESC ( B, ESC 7, ESC c).
_ESC = r"\x1b[\x20-\x2f]*[\x30-\x7e]?"
_SEQUENCES = re.compile(f"{_STRING_CMD}|{_CSI}|{_ESC}")
# Remaining C0 controls except tab, DEL, C1 controls, and the bidirectional
# embedding/override/isolate controls that can reorder what is displayed.
_CONTROLS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_INTRODUCERS = re.compile("[\x1b\x80-\x9f]")
_SURROGATES = re.compile("[\ud800-\udfff]")


def clean_line(text: str | bytes, max_len: int = 2000, tab_size: int = 4) -> str:
    """Return ``text`` as one line that a terminal shows literally.

    Bytes are decoded as UTF-8 with invalid sequences replaced by U+FFFD (so
    are lone surrogates in a ``str``). ANSI CSI, OSC, DCS, SOS, PM and APC
    sequences and other escape sequences are removed, as are C0/C1 control
    characters and bidirectional override characters; line breaks become a
    space, tabs become ``tab_size`` spaces. Right-to-left text and markup-like
    brackets are kept unchanged. A result longer than ``max_len`` characters
    is cut to ``max_len`` and followed by ``"…[+N chars]"``. Never raises
    for any input.
    """
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", errors="replace")
    elif _SURROGATES.search(text):
        text = _SURROGATES.sub("\ufffd", text)
    dropped = 0
    # Bound the regex work on huge inputs; the count of what is cut is approximate
    # only when escape sequences straddle the cut.
    window = max(max_len * 4, 4096)
    if len(text) > window:
        dropped = len(text) - window
        text = text[:window]
    if _INTRODUCERS.search(text):
        text = _SEQUENCES.sub(ESCAPE_MARK, text)
    text = text.replace("\r\n", " ").replace("\n", " ")
    if "\t" in text:
        text = text.replace("\t", " " * tab_size)
    text = _CONTROLS.sub(_mark, text)
    if len(text) > max_len:
        dropped += len(text) - max_len
        text = text[:max_len]
    if dropped:
        text = f"{text}{ELLIPSIS}[+{dropped} chars]"
    return text


def _mark(match: re.Match[str]) -> str:
    """Return the visible stand-in of one removed control character."""
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # the control pictures block: ␀ .. ␟
    if code == 0x7F:
        return "\u2421"  # ␡
    return CONTROL_MARK


# --------------------------------------------------------------------------
# Credentials in text

#: What a redacted credential is shown as.
REDACTED = "******"

# scheme://netloc, the netloc running to the first "/", "?", "#" or white space (a quote
# may be part of a password; one that closes a quoted URL stays with the host).
_URL = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<netloc>[^\s/?#]*)")
# name=value where the name says it holds a credential (query parameters, command options).
_SECRET_PARAM = re.compile(
    r"(?P<name>(?<![\w.\-])[\w.\-]*?"
    r"(?:token|secret|passw(?:or)?d|pwd|key|sig|signature|credentials?|auth|authorization"
    r"|session(?:id)?))=(?P<quote>[\"']?)(?P<value>[^\s&;#\"'<>`]+)",
    re.IGNORECASE,
)
# An HTTP Authorization header value written out.
_AUTH_HEADER = re.compile(r"\b(?P<scheme>Bearer|Basic)\s+(?P<value>[A-Za-z0-9._~+/=\-]{6,})")
# Schemes whose user name alone (no password) is itself usually a token.
_TOKEN_USER_SCHEMES = ("http://", "https://", "ws://", "wss://")


def redact_url(text: str) -> str:
    """Return ``text`` with the credentials of the URLs in it replaced by ``******``.

    In every ``scheme://user:password@host`` the password goes (the user
    stays); in ``http(s)://token@host`` the lone user name goes too (Git and
    many APIs take a token there; ``ssh://git@host`` keeps its user). Values of
    parameters whose name says they hold a credential (``?token=``,
    ``access_token=``, ``api_key=``, ``X-Amz-Signature=``, ``--password=``, ...)
    and ``Bearer``/``Basic`` header values go anywhere in the text. Everything
    else is unchanged, and redacting twice changes nothing more. Use it on any
    message that may carry a configured URL, before the message is shown,
    logged or raised. Never raises.
    """
    if not text:
        return text
    text = _URL.sub(_redact_netloc, text)
    text = _SECRET_PARAM.sub(lambda m: f"{m.group('name')}={m.group('quote')}{REDACTED}", text)
    return _AUTH_HEADER.sub(lambda m: f"{m.group('scheme')} {REDACTED}", text)


def _redact_netloc(match: re.Match[str]) -> str:
    """Return one ``scheme://netloc`` with the credentials of its user part redacted."""
    scheme, netloc = match.group("scheme"), match.group("netloc")
    userinfo, at, host = netloc.rpartition("@")
    if not at:
        return match.group()
    user, colon, _password = userinfo.partition(":")
    if colon:
        userinfo = f"{user}:{REDACTED}"
    elif scheme.lower() in _TOKEN_USER_SCHEMES and userinfo != REDACTED:
        userinfo = REDACTED
    return f"{scheme}{userinfo}@{host}"
