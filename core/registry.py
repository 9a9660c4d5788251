"""Name → object registries for methods, backbones, datasets and executors (timm's `register_model` idea).

    BACKBONES = Registry("backbone")

    @BACKBONES.register("vit_tiny_patch16")
    def vit_tiny_patch16(**kw): ...

    METHODS.add("ijepa", spec)  # an object rather than a decorated function

A duplicate name raises at registration; an unknown name raises with the list of valid ones. Tests
add a throwaway entry for the length of a `with registry.registered(name, obj):` block.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from core.errors import BenchError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, name: str, obj: T) -> T:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj
        return obj

    def register(self, name: str) -> Callable[[T], T]:
        """A decorator that adds what it decorates under `name`."""

        def add(obj: T) -> T:
            return self.add(name, obj)

        return add

    def unregister(self, name: str) -> T:
        """Remove `name` (tests that registered a throwaway entry); unknown names raise as `get` does."""
        obj = self.get(name)
        del self._items[name]
        return obj

    @contextmanager
    def registered(self, name: str, obj: T) -> Iterator[T]:
        """`obj` registered under `name` inside the block, removed after it whatever happens."""
        self.add(name, obj)
        try:
            yield obj
        finally:
            self._items.pop(name, None)

    @contextmanager
    def replaced(self, name: str, obj: T) -> Iterator[T]:
        """`obj` registered under `name` in place of what is there, inside the block; the old entry
        back after it whatever happens (a test wrapping a registered function)."""
        old = self.unregister(name)
        try:
            with self.registered(name, obj):
                yield obj
        finally:
            self._items[name] = old

    def get(self, name: str) -> T:
        if name not in self._items:
            raise BenchError(f"unknown {self.kind} {name!r}; valid: {', '.join(sorted(self._items))}")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        """(name, object) pairs in the order they were registered."""
        return list(self._items.items())

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
