"""Name → object registries for methods, backbones and datasets (timm's `register_model` idea).

    BACKBONES = Registry("backbone")

    @BACKBONES.register("vit_tiny_patch16")
    def vit_tiny_patch16(**kw): ...

A duplicate name raises at registration; an unknown name raises with the list of valid ones.
"""

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from core.errors import BenchError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        if name not in self._items:
            raise BenchError(f"unknown {self.kind} {name!r}; valid: {', '.join(sorted(self._items))}")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
