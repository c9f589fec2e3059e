"""One registry class for everything registered by name: methods, metrics and datasets.

A :class:`Registry` maps names (and aliases) to entries, fills itself lazily (a ``loader``
imports the modules whose decorators register their entries, on first read) and fails with
one kind of message: what was asked, the closest names, and where to find the list.

>>> from tribute.registry import Registry
>>> reg: Registry[int] = Registry("widget", hint="See widgets() for the list.")
>>> _ = reg.add("one", 1)
>>> reg.alias("uno", "one")
>>> reg.get("uno")
1
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from .errors import InputError

__all__ = ["Registry"]

T = TypeVar("T")


#: Seconds a thread waits for another thread's first read of a registry (Registry.load).
_LOAD_WAIT_SECONDS = 60.0


class Registry(Generic[T]):
    """Names -> entries, with aliases, lazy loading and did-you-mean errors.

    Args:
        kind: what is registered (``"method"``), used in messages.
        hint: appended to the unknown-name message (where to find the list).
        loader: called once before the first read, to import the registering modules.
        same: ``(old, new) -> bool``: re-registering ``name`` with an entry for which this is
            true is allowed (module reloads); anything else under a taken name is an error.
            default=None (identity).
        duplicate_error: exception type for a name registered twice. default=TypeError.
        unknown_error: ``(name, close_matches) -> exception`` for an unknown name (``name`` as
            given, not always a str). default=None
            (an :class:`~tribute.errors.InputError` naming ``kind``, the closest names and
            ``hint``).
    """

    def __init__(self, kind: str, *, hint: str = "",
                 loader: Callable[[], None] | None = None,
                 same: Callable[[T, T], bool] | None = None,
                 duplicate_error: type[Exception] = TypeError,
                 unknown_error: Callable[[Any, list[str]], Exception] | None = None) -> None:
        self.kind = kind
        self.hint = hint
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}
        self._loader = loader
        self._loaded = loader is None
        self._loading = False
        self._load_lock = threading.RLock()
        self._same = same
        self._duplicate_error = duplicate_error
        self._unknown_error = unknown_error

    # ------------------------------------------------------------------ filling
    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` under ``name``; returns the entry (for decorators)."""
        if not name or not isinstance(name, str):
            raise TypeError(f"{self.kind} registry: name {name!r} must be a non-empty string")
        old = self._entries.get(name)
        if old is not None and old is not entry and not (self._same and self._same(old, entry)):
            raise self._duplicate_error(f"{self.kind} name {name!r} registered twice")
        if name in self._aliases:
            raise self._duplicate_error(f"{self.kind} name {name!r} is already an alias of "
                                        f"{self._aliases[name]!r}")
        self._entries[name] = entry
        return entry

    def alias(self, name: str, target: str) -> None:
        """Make ``name`` another name of the entry ``target`` (which may register later)."""
        if name in self._entries:
            raise self._duplicate_error(f"{self.kind} alias {name!r} is already a {self.kind} name")
        self._aliases[name] = target

    def set_loader(self, loader: Callable[[], None]) -> None:
        """Set the function that imports the registering modules (run once, on first read)."""
        self._loader = loader
        self._loaded = False

    def load(self) -> None:
        """Run the loader once (reads call this); other threads wait until it has finished
        (they read 12 of 47 methods while a first read's imports ran), a read made by the
        loader's own imports sees what is registered so far."""
        if self._loaded:
            return
        # a timeout, not a hang: a module that reads a registry while it is imported, in a thread
        # other than the one whose first read is importing it, would wait on Python's import lock
        if not self._load_lock.acquire(timeout=_LOAD_WAIT_SECONDS):
            raise RuntimeError(
                f"{self.kind} registry: waited {_LOAD_WAIT_SECONDS:.0f} s for another thread's first read "
                "to finish importing the registering modules; a module that reads this registry while "
                "it is being imported (a plugin calling get_method at import time?) can cause this.")
        try:
            if self._loaded or self._loading:  # done meanwhile, or a read from the loader itself
                return
            self._loading = True
            try:
                if self._loader is not None:
                    self._loader()
            finally:
                self._loading = False
                self._loaded = True
        finally:
            self._load_lock.release()

    # ------------------------------------------------------------------ reading
    def resolve(self, name: str) -> str:
        """The registered name behind ``name`` (aliases followed); raises if unknown."""
        self.load()
        key = self._aliases.get(name, name) if isinstance(name, str) else name
        if not isinstance(key, str) or key not in self._entries:
            close = difflib.get_close_matches(str(name), self.names(aliases=True), n=3)
            if self._unknown_error is not None:  # the name as given (rev51g: method=None
                # was quoted as method='None', a string the user never passed)
                raise self._unknown_error(name, close)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise InputError(f"{self.kind}={name!r} is not a registered {self.kind}.{hint}"
                             + (f" {self.hint}" if self.hint else ""))
        return key

    def get(self, name: str) -> T:
        """The entry registered as ``name`` (or aliased by it)."""
        return self._entries[self.resolve(name)]

    def entries(self) -> dict[str, T]:
        """Registered names -> entries, sorted by name (aliases not included)."""
        self.load()
        return dict(sorted(self._entries.items()))

    def aliases(self) -> dict[str, str]:
        """Alias -> registered name, sorted (only aliases whose target is registered)."""
        self.load()
        return {a: t for a, t in sorted(self._aliases.items()) if t in self._entries}

    def names(self, *, aliases: bool = False) -> list[str]:
        """Sorted registered names (and aliases, when asked)."""
        self.load()
        names = list(self._entries) + (list(self.aliases()) if aliases else [])
        return sorted(names)

    def __contains__(self, name: object) -> bool:
        self.load()
        return isinstance(name, str) and (name in self._entries or name in self.aliases())

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self.load()
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self)} entries, {len(self.aliases())} aliases)"
