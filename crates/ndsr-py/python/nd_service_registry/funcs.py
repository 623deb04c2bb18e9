"""The original's data helpers, with the same types: ``encode`` returns
bytes, ``decode`` takes bytes or str, ``default_data`` a dict."""

import json
import os
import time

__all__ = ["encode", "decode", "default_data"]


def default_data():
    """``{'pid': os.getpid(), 'created': 'YYYY-MM-DD HH:MM:SS'}`` (local time)."""
    return {"pid": os.getpid(), "created": time.strftime("%Y-%m-%d %H:%M:%S")}


def encode(data=None):
    """Compact JSON of ``data`` merged over :func:`default_data` (user keys
    win); a str becomes ``{'string_value': data}``. Other data raises
    TypeError, as in the original."""
    if isinstance(data, str):
        data = {"string_value": data}
    all_data = default_data()
    if data:
        all_data.update(data)
    return json.dumps(all_data, separators=(",", ":")).encode("UTF-8")


def decode(data):
    """Node bytes (or str) to a dict: None for nothing, {} for whitespace,
    a JSON object as itself, anything else as ``{'string_value': text}``."""
    if data is None:
        return None
    if isinstance(data, bytes):
        data = data.decode("UTF-8")
    if data == "":
        return None
    text = data.strip()
    if text.startswith("{") and text.endswith("}"):
        try:
            value = json.loads(text)
            if isinstance(value, dict):
                return value
        except ValueError:
            pass
    if text == "":
        return {}
    return {"string_value": text}
