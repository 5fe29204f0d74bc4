"""Patch a module the moment it is imported (or at once if it already is): the one import hook of the plugin.

verl 0.9.1 offers no hook for what this plugin adds to its trainers (reward components in the
step metrics, the batch-median length penalty), so ``metrics`` and ``batch_terms`` wrap trainer
functions. The plugin is imported in every verl process, sometimes before and sometimes after the
trainer modules, so each patch is registered here with ``patch_on_import``:

* a module already in ``sys.modules`` gets the caller's patch at once;
* otherwise one finder on ``sys.meta_path`` wraps the loader that the finders after it return,
  and runs every patch registered for that module right after the module's own code, in the
  order the patches were registered (delegating, not asking the file system itself, keeps other
  import hooks and editable installs working).

Each ``(module, key)`` is applied once per module object: registering a key again never wraps a
function twice. A patch that raises is not caught: the exception reaches the caller of
``patch_on_import`` (module already imported) or the ``import`` statement (module imported later),
and that key is tried again the next time (the next ``patch_on_import`` with it, or the next
import of a module whose import failed). Callers choose what to raise and how to report it.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import sys
import threading
import weakref
from collections.abc import Callable, Sequence
from types import ModuleType

__all__ = ["Patch", "patch_on_import"]

logger = logging.getLogger(__name__)

Patch = Callable[[ModuleType], None]

_LOCK = threading.RLock()
_PATCHES: dict[str, dict[str, Patch]] = {}  # module name -> key -> patch, in registration order
_APPLIED: weakref.WeakKeyDictionary[ModuleType, set[str]] = weakref.WeakKeyDictionary()  # keys done or running
_LOADING: set[str] = set()  # modules whose code our loader is running; their patches are applied after it
_FINDER: _PatchFinder | None = None


def patch_on_import(module_name: str, patch: Patch, *, key: str) -> None:
    """Apply ``patch`` to ``module_name`` once: now if it is imported, else when it is.

    ``key`` names the patch within that module; a second registration under the same key is
    ignored (the first patch stays). Exceptions of ``patch`` propagate (see the module doc).
    """
    _install_finder()
    with _LOCK:
        _PATCHES.setdefault(module_name, {}).setdefault(key, patch)
        module = sys.modules.get(module_name)
        if module is None or module_name in _LOADING:
            return  # the loader applies it once the module's code has run
    _apply_pending(module, module_name, only=key)  # the caller's own patch: its error is the caller's


def _install_finder() -> None:
    global _FINDER
    with _LOCK:
        if _FINDER is None or _FINDER not in sys.meta_path:
            _FINDER = _PatchFinder()
            sys.meta_path.insert(0, _FINDER)


def _apply_pending(module: ModuleType, name: str, *, loading: bool = False, only: str | None = None) -> None:
    """Run the patches of ``name`` (or just ``only``) not yet applied to ``module``.

    Each is claimed under the lock and run outside it, so a patch may import other modules.
    """
    while True:
        with _LOCK:
            done = _APPLIED.setdefault(module, set())
            pending = [(key, patch) for key, patch in _PATCHES.get(name, {}).items()
                       if key not in done and (only is None or key == only)]
            if not pending:
                if loading:
                    _LOADING.discard(name)
                return
            key, patch = pending[0]
            done.add(key)
        try:
            patch(module)
        except BaseException:
            with _LOCK:
                done.discard(key)
                if loading:
                    _LOADING.discard(name)
            raise
        logger.debug("patched %s (%s)", name, key)


class _PatchingLoader(importlib.abc.Loader):
    """Runs the real loader, then the module's patches."""

    def __init__(self, loader: importlib.abc.Loader, name: str):
        self._loader, self._name = loader, name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with _LOCK:
            _LOADING.add(self._name)
            _APPLIED.pop(module, None)  # its code runs (again, on a reload): every patch is due
        try:
            self._loader.exec_module(module)
        except BaseException:
            with _LOCK:
                _LOADING.discard(self._name)
            raise
        _apply_pending(module, self._name, loading=True)


class _PatchFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: asks the finders after it for a patched module and wraps their loader."""

    def __init__(self) -> None:
        self._busy = threading.local()

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        with _LOCK:
            wanted = bool(_PATCHES.get(fullname))
        busy: set[str] | None = getattr(self._busy, "names", None)
        if busy is None:
            busy = self._busy.names = set()
        if not wanted or fullname in busy:
            return None
        busy.add(fullname)
        try:
            spec = self._find_after_me(fullname, path, target)
        finally:
            busy.discard(fullname)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _PatchingLoader(spec.loader, fullname)
        return spec

    def _find_after_me(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None
    ) -> importlib.machinery.ModuleSpec | None:
        finders = list(sys.meta_path)
        later = finders[finders.index(self) + 1 :] if self in finders else finders
        for finder in later:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find is not None else None
            if spec is not None:
                return spec
        return None
