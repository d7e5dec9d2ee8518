"""A backend's emitters by layer class.

Each backend (:mod:`.hls`, :mod:`.rtl`) keeps one :class:`Emitters` registry: an emitter object
per layer class, found along the class's MRO, so a subclass uses its base's emitter unless it
registers its own. Adding a layer kind: ``@EMITTERS.register(MyLayer)`` on an emitter class in
each backend (docs/design.md, section 4.1)."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from ...errors import PascalError

E = TypeVar("E")


class Emitters(Generic[E]):
    """Emitter instances by layer class, for one backend."""

    def __init__(self, backend: str):
        self.backend = backend
        self.by_class: dict[type, E] = {}

    def register(self, *classes: type) -> Callable[[type[E]], type[E]]:
        """Class decorator: an instance of the decorated emitter serves ``classes``."""
        def decorate(emitter: type[E]) -> type[E]:
            for cls in classes:
                self.by_class[cls] = emitter()
            return emitter
        return decorate

    def __call__(self, layer) -> E:
        for cls in type(layer).__mro__:
            if cls in self.by_class:
                return self.by_class[cls]
        raise PascalError(f"layer {layer.name}: the {self.backend} backend has no emitter for "
                          f"{type(layer).__name__} ({layer.op_type})")
