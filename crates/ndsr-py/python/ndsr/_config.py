"""Typed configuration: the last good value of a configuration node.

The Rust core (``_core.ConfigCore``, a ``Config<serde_json::Value>``)
follows the node and keeps the last value that is JSON and fits the path's
schema. :class:`Config` adds the Python-side checks on top of it: each new
value of the core goes through ``model`` (``model.model_validate(value)``,
e.g. a pydantic model class) and then ``validate`` (a callable; raising or
returning False refuses the value). A value refused here is treated as one
the core refused: it never replaces the last good value, it shows in
:attr:`Config.status` and :attr:`Config.rejected`, it is logged once, and
no callback sees it.

The checks run once per value of the core, in whichever thread looks first:
a reader (:meth:`Config.get`, :attr:`Config.status`...) or the registry's
callback pool, which follows the core's good values once a callback is
added (one job at a time per configuration, as for a path).
"""

import collections
import threading

from ndsr import _core

#: Where a configuration stands: ``kind`` is "valid" (the value held is the
#: node's at ``version``), "rejected" (the node's value at ``version`` was
#: refused for ``reasons``; the value held is the last good one), "missing"
#: (no node) or "stale" (not connected; ``version`` is the value held's).
ConfigStatus = collections.namedtuple("ConfigStatus", ["kind", "version", "reasons"])


class _Entry(object):
    __slots__ = ("callback", "last")

    def __init__(self, callback, last):
        self.callback = callback
        self.last = last


def _model_reasons(model, error):
    errors = getattr(error, "errors", None)
    if callable(errors):
        try:
            found = errors()
            return [
                "model %s, at %r: %s" % (model.__name__, "".join("/%s" % p for p in e.get("loc", ())), e.get("msg"))
                for e in found
            ] or ["model %s: %s" % (model.__name__, error)]
        except Exception:
            pass
    return ["model %s: %s: %s" % (getattr(model, "__name__", model), type(error).__name__, error)]


class Config(object):
    """The configuration node ``path`` as its last good value (see
    :meth:`ndsr.Registry.config`)."""

    def __init__(self, core, validate=None, model=None, default=None, has_default=False, logger=None, pool=None):
        self._core = core
        self._path = core.path
        self._validate = validate
        self._model = model
        self._log = logger
        self._pool = pool
        # Judging (the checks and the state they set) is under `_lock`;
        # delivering to callbacks is under `_delivering`, so that a callback
        # being added cannot miss a value delivered meanwhile.
        self._lock = threading.RLock()
        self._delivering = threading.RLock()
        self._judged = None  # the core's generation last judged
        self._good = None  # a _core.JsonValue (no model) or the model's instance
        self._good_version = None
        self._good_gen = 0
        self._refused = None  # (version, reasons) of the core's current value
        self._refusals = 0
        self._entries = []
        self._stopped = False
        self._following = False
        self.key = None
        self._default = None
        if has_default:
            good, reasons = self._check(_core.JsonValue(default))
            if reasons:
                raise ValueError("the default of %s is refused: %s" % (self._path, "; ".join(reasons)))
            self._default = good
        self._has_default = has_default
        self._judge()
        if self._good is None and has_default:
            # The node's first value was refused here: the default serves.
            self._good = self._default
            self._good_gen += 1
        if self._good is None:
            version, reasons = self._refused
            raise _core.ConfigUnavailable(
                "configuration %s has no usable value: version %s was refused: %s; and no default"
                % (self._path, version, "; ".join(reasons))
            )

    # -- judging --------------------------------------------------------

    def _check(self, value_handle):
        """(good, reasons): the value to keep (a JsonValue, or the model's
        instance) if it passes the model and validate, else the reasons."""
        good = value_handle
        value = value_handle.get()
        if self._model is not None:
            try:
                good = value = self._model.model_validate(value)
            except Exception as e:
                return None, _model_reasons(self._model, e)
        if self._validate is not None:
            try:
                ok = self._validate(value)
            except Exception as e:
                return None, ["validate raised %s: %s" % (type(e).__name__, e)]
            if ok is False:
                return None, ["validate returned False"]
        return good, None

    def _judge(self):
        """Judges the core's value if it is one not judged yet."""
        with self._lock:
            gen, version, handle = self._core.current()
            if gen == self._judged:
                return
            self._judged = gen
            if version is None and self._has_default:
                good = self._default  # judged when the config was made
            else:
                good, reasons = self._check(handle)
                if reasons:
                    self._refused = (version, reasons)
                    self._refusals += 1
                    # The core reports it (a canary refused here goes back
                    # to the live value, judged next).
                    self._core.refuse(gen, reasons)
                    if self._log is not None:
                        self._log.warning(
                            "configuration %s version %s refused, keeping the last good value: %s",
                            self._path,
                            version,
                            "; ".join(reasons),
                        )
                    return
            self._refused = None
            self._good = good
            self._good_version = version
            self._good_gen += 1
            if version is not None and (self._validate is not None or self._model is not None):
                # The core saves nothing itself when Python judges further.
                self._core.save_good(gen)

    def _current(self):
        """(good, generation) of the last good value, judged first."""
        with self._lock:
            self._judge()
            return self._good, self._good_gen

    # -- reading --------------------------------------------------------

    @property
    def path(self):
        """The configuration path."""
        return self._path

    def get(self):
        """The last good value, from memory: a new dict (or list...) each
        call, or the model's instance (the same one until the next good
        value)."""
        return _value(self._current()[0])

    @property
    def version(self):
        """The node's version the value held came from (None: the default)."""
        with self._lock:
            self._judge()
            return self._good_version

    @property
    def applied(self):
        """What the core holds: ``{"kind": "stable", "version": N}`` (the
        live value), ``{"kind": "canary", "base_version": N, "sha256": S}``
        (a canary this client's identity and labels matched, see
        :meth:`Registry.start_canary`) or ``{"kind": "other"}`` (a default
        or saved value). A canary that ``validate`` or ``model`` refuses
        is not applied: the core goes back to the live value (judged in
        turn) and reports the canary as refused."""
        self._judge()
        return self._core.applied()

    @property
    def status(self):
        """Where it stands: a :data:`ConfigStatus` (kind, version, reasons)."""
        kind, version, reasons = self._core.status()
        with self._lock:
            self._judge()
            refused = self._refused
            if kind == "valid" and refused is not None and refused[0] == version:
                return ConfigStatus("rejected", version, tuple(refused[1]))
            if kind == "stale":
                version = self._good_version
        return ConfigStatus(kind, version, tuple(reasons))

    @property
    def rejected(self):
        """How many values were refused so far (by the core or the checks)."""
        with self._lock:
            self._judge()
            return self._core.rejected() + self._refusals

    # -- callbacks ------------------------------------------------------

    def add_callback(self, callback):
        """Calls ``callback(value)`` now with the good value, then with each
        new good value, on the registry's callback pool (one at a time, in
        order; never with a refused value, never twice with one value).
        Returns False if it was there already. If the first call raises, the
        callback is not added and the exception propagates."""
        with self._delivering:
            with self._lock:
                if any(e.callback == callback for e in self._entries):
                    return False
            good, gen = self._current()
            callback(_value(good))
            with self._lock:
                self._entries.append(_Entry(callback, gen))
                follow = not self._following and self._pool is not None
                self._following = True
        if follow:
            try:
                self._pool.watch_config(self._core, self)
            except BaseException:
                with self._lock:
                    self._following = False
                    self._entries = [e for e in self._entries if e.callback != callback]
                raise
        return True

    def remove_callback(self, callback):
        """Removes a callback; returns whether it was there."""
        with self._lock:
            before = len(self._entries)
            self._entries = [e for e in self._entries if e.callback != callback]
            return len(self._entries) != before

    def stop(self):
        """No callback starts after this."""
        self._stopped = True

    def _deliver(self, _snapshot):
        """Runs the callbacks on the latest good value (a pool worker)."""
        with self._delivering:
            good, gen = self._current()
            with self._lock:
                entries = list(self._entries)
            for entry in entries:
                if self._stopped:
                    return
                if entry.last >= gen:
                    continue
                entry.last = gen
                try:
                    entry.callback(_value(good))
                except Exception:
                    self._log.exception(
                        "configuration callback %r for %s raised; the other callbacks still run",
                        entry.callback,
                        self._path,
                    )

    def __repr__(self):
        return "Config(path=%r, status=%r)" % (self._path, self.status)


def _value(good):
    """What a reader is given of a good value: a new object made from the
    JSON each time, or the model's instance."""
    return good.get() if isinstance(good, _core.JsonValue) else good
