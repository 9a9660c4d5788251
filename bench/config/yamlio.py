"""Every YAML the tool reads, read within bounds: sweep files, `-c` configs, run folders'
config.yaml, SLURM profiles and the values of dotted overrides.

A user's file must not crash, hang or silently mislead the tool, so on top of PyYAML's safe
loader (libyaml's when it is installed):

- a file larger than MAX_BYTES, or not UTF-8, is refused with one line naming it;
- nesting deeper than MAX_DEPTH levels is refused (libyaml stops at 1,000 levels and the
  pure-Python composer recurses until Python's stack gives out);
- aliases may expand to at most MAX_VALUES values: PyYAML builds a "billion laughs" file
  quickly, as shared references, but every copy the tool makes of it (merging, hashing,
  writing config.yaml) would expand it for ever;
- a key repeated in one mapping is refused with the key and both lines (YAML's loaders keep
  the last one without a word); a `<<` merge key still overrides as YAML means it to.

    data = read_yaml(Path("sweeps/masks.yaml"))    # a BenchError naming the file on any of these
"""

from pathlib import Path
from typing import Any

import yaml

from bench.errors import BenchError

MAX_BYTES = 1 << 20  # 1 MiB: a sweep or config holds a few kilobytes
MAX_DEPTH = 32  # a run's config nests 4 levels, a sweep's grid 6
MAX_VALUES = 100_000  # scalars, lists and mappings after expanding aliases


class _Refused(yaml.YAMLError):
    """A bound this module sets was crossed; `line` is 1-based, where known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message, self.line = message, line


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


class _Bounds:
    """The bounds, as hooks of a PyYAML safe loader (mixed into libyaml's and the pure-Python one)."""

    _depth = 0

    def compose_node(self, parent, index):
        """The pure-Python composer's recursion, stopped at MAX_DEPTH (libyaml's is in C: the node
        graph is checked after it, in get_single_data)."""
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        _check_graph(node)
        return self.construct_document(node)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *base` then a key of its own: an override, as YAML means it
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:  # an unhashable key: PyYAML's own error says so
                    continue
                if first is not key_node:
                    raise _Refused(f"duplicate key {key!r} (first at line {_line(first)})", _line(key_node))
        return super().construct_mapping(node, deep)


class PureLoader(_Bounds, yaml.SafeLoader):
    """The bounded pure-Python loader (used where libyaml is missing)."""


if hasattr(yaml, "CSafeLoader"):

    class Loader(_Bounds, yaml.CSafeLoader):
        """The bounded loader on libyaml's parser: ten times faster for big sweeps and run folders."""

else:
    Loader = PureLoader


def _check_graph(root: yaml.Node) -> None:
    """Depth and size of the document as its aliases expand it, computed once per distinct node
    (so a billion-laughs file is measured in microseconds, not expanded); an alias inside its own
    anchor is refused."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (values, levels) under it, itself included
    active: set[int] = set()

    def visit(node: yaml.Node, depth: int) -> tuple[int, int]:
        known = sizes.get(id(node))
        if known is None:
            if id(node) in active:
                raise _Refused("an alias refers to the collection that holds it", _line(node))
            if depth > MAX_DEPTH:
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels", _line(node))
            active.add(id(node))
            children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else node.value
            values, levels = 1, 1
            if isinstance(node, yaml.CollectionNode):
                for child in children:
                    n, d = visit(child, depth + 1)
                    values, levels = values + n, max(levels, d + 1)
            active.discard(id(node))
            known = sizes[id(node)] = (values, levels)
        if depth - 1 + known[1] > MAX_DEPTH:
            raise _Refused(f"nested deeper than {MAX_DEPTH} levels (through an alias)", _line(node))
        if known[0] > MAX_VALUES:
            raise _Refused(f"holds more than {MAX_VALUES:,} values once its aliases are expanded", _line(node))
        return known

    visit(root, 1)


def parse_yaml(text: str, loader_class: type = Loader) -> Any:
    """One YAML document from a string, within the bounds above. Raises yaml.YAMLError (the bounds'
    errors carry `message` and `line`)."""
    loader = loader_class(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def describe(e: yaml.YAMLError) -> str:
    """One line for a YAML error: what is wrong and the line where it is."""
    if isinstance(e, _Refused):
        return f"{e.message}{f' at line {e.line}' if e.line else ''}"
    if isinstance(e, yaml.reader.ReaderError):  # a character YAML does not allow (a NUL, a control character)
        return f"malformed YAML at offset {e.position}: {e.reason}"
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None)
    where = f" at line {mark.line + 1}" if mark else ""
    return f"malformed YAML{where}{f': {problem}' if problem else ''}"


def read_yaml(path: Path, what: str = "file") -> Any:
    """The YAML document in `path` (None when empty); one BenchError naming the file otherwise.
    `what` names the file in the message when it does not exist ("config file", "sweep file")."""
    if path.is_dir():
        raise BenchError(f"{what} {path} is a folder, not a YAML file")
    if not path.exists():
        raise BenchError(f"{what} {path} does not exist")
    if not path.is_file():  # a device or a pipe: it might never end
        raise BenchError(f"{what} {path} is not a regular file")
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise BenchError(f"{what} {path} cannot be read: {e.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise BenchError(f"{path}: larger than the {MAX_BYTES >> 20} MiB a YAML file may hold")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BenchError(
            f"{path}: not UTF-8 text (byte {raw[e.start]:#04x} at offset {e.start}); save it as UTF-8"
        ) from None
    try:
        return parse_yaml(text)
    except yaml.YAMLError as e:
        raise BenchError(f"{path}: {describe(e)}") from None


def load_yaml(path: str | Path, what: str = "config file") -> dict:
    """A YAML mapping from a file, read within bench/config/yamlio.py's bounds; {} for an empty file."""
    path = Path(path)
    data = read_yaml(path, what)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BenchError(f"{path}: expected a mapping at the top level")
    return data
