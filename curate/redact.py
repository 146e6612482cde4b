"""Keeping credentials out of everything Thresher writes (manifests, reports, run records, logs).

A user may put a key where a URL goes (`llm.base_url=https://user:KEY@host/v1`, a presigned
`?X-Amz-Signature=...`) or in an option named like one (`token`, `password`). `redacted` returns a
copy of a config with those replaced by `***`; `redact_text` does the same to a line of text.
Credentials belong in each backend's environment variables and config files (`llm.api_key_env`,
fsspec's), which are never read into the config.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

# scheme://userinfo@host: the user name can be the key itself (https://KEY@host), so all of it goes.
URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#@\s]+)@")
# Query parameters that carry credentials (API keys, tokens, signed-URL signatures).
SECRET_QUERY = re.compile(
    r"(?P<name>[?&](?:api[_-]?key|key|token|access[_-]?token|auth|password|secret|sig|signature|"
    r"x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature|x-goog-credential)=)[^&#\s]+",
    re.IGNORECASE,
)
# Options whose value is a credential by name (exact names: `api_key_env` names a variable, and
# `eos_token` or `max_tokens` are not secrets).
SECRET_KEYS = {
    "api_key",
    "apikey",
    "api_token",
    "access_token",
    "auth_token",
    "hf_token",
    "token",
    "password",
    "passwd",
    "secret",
    "secret_key",
    "access_key",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "authorization",
    "credentials",
}


def redact_text(text: str) -> str:
    """`text` with the credentials inside URLs masked."""
    if "://" not in text and "=" not in text:
        return text
    text = URL_USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    return SECRET_QUERY.sub(lambda m: f"{m['name']}{MASK}", text)


def redacted(value: Any, key: str = "") -> Any:
    """A copy of a config value (dicts, lists, strings) with credentials masked: URLs' userinfo and
    secret query parameters everywhere, and the whole value of an option named like a secret."""
    if isinstance(value, dict):
        return {k: redacted(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redacted(v) for v in value]
    if isinstance(value, str):
        if key.lower() in SECRET_KEYS and value:
            return MASK
        return redact_text(value)
    return value
