"""Keep credentials out of logs, provenance and MLflow: URL passwords, secret query parameters, secret config keys."""

from __future__ import annotations

import re

MASK = "***"
_USERINFO = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]+:)(?P<pw>[^\s/]*)@")
_SECRET_WORDS = r"password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|secret[_-]?key|credentials?"
_QUERY = re.compile(rf"(?P<head>[?&;](?:{_SECRET_WORDS})=)(?P<pw>[^&;\s'\"]*)", re.IGNORECASE)
# YAML/INI/env style `password: x`, `AWS_SECRET_ACCESS_KEY=x`, `"token": "x"`
_KEYVAL = re.compile(
    rf"(?P<head>(?:^|[\s{{,\"'])[\"']?[A-Za-z0-9_\-]*(?:{_SECRET_WORDS})[\"']?\s*[:=]\s*)"
    rf"(?P<pw>[\"']?[^\s,}}\"'#]+[\"']?)", re.IGNORECASE | re.MULTILINE)


def redact_url(url: str) -> str:
    """``url`` with its password (``scheme://user:PASSWORD@host``) and secret query values masked."""
    out = _USERINFO.sub(lambda m: m.group("head") + MASK + "@", str(url))
    return _QUERY.sub(lambda m: m.group("head") + MASK, out)


def redact_text(text: str) -> str:
    """Every URL password and every ``password: x``-style value in ``text`` masked (config files)."""
    out = redact_url(text)

    def mask(m: re.Match) -> str:
        value = m.group("pw")
        if MASK in value or value.strip("\"'") in ("", "null", "None", "~"):
            return m.group(0)
        return m.group("head") + MASK

    return _KEYVAL.sub(mask, out)


def has_secret(text: str) -> bool:
    """True when ``redact_text`` would change ``text``."""
    return redact_text(text) != text
