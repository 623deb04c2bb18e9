"""Forwards the Rust core's log events to Python's ``logging``.

The core queues its events; one daemon thread owned by Python drains the
queue and logs each record under ``<base>.<module>`` (``ndsr`` by default,
``nd_service_registry`` once the drop-in is imported), so existing logging
configuration applies and no Rust thread ever takes the GIL to log.
"""

import logging
import threading

from ndsr import _core

_lock = threading.Lock()
_thread = None
_base = "ndsr"


def set_base(name):
    """Logs go under ``name`` from now on."""
    global _base
    _base = name


def _logger_for(target):
    # "ndsr::session::actor" -> "<base>.session.actor"
    parts = target.split("::")[1:]
    return logging.getLogger(".".join([_base] + parts))


def _run():
    while True:
        try:
            records = _core.drain_logs(1.0)
        except Exception:  # pragma: no cover - interpreter shutdown
            return
        for level, target, message in records:
            _logger_for(target).log(level, message)


def start():
    """Starts the forwarding thread once per process."""
    global _thread
    with _lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="ndsr-logs", daemon=True)
            _thread.start()


def _after_fork():
    global _thread, _lock
    _lock = threading.Lock()
    _thread = None
