"""Architecture: rdc_keras's import graph, parsed with ast (nothing is imported, no TensorFlow).

No import cycles, and the dependency directions of RULES. `python tests/test_architecture.py`
prints the graph, the cycles and each rule's verdict (exit status 1 if anything is wrong).
"""

import ast
import collections
import dataclasses
import functools
import itertools
import pathlib
import sys
from collections.abc import Iterator
from typing import NamedTuple

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE_DIR = REPO_ROOT / "rdc_keras"


class Rule(NamedTuple):
    """Modules matching `sources` must not import anything matching `forbidden`."""

    name: str
    sources: str
    forbidden: str
    transitive: bool  # also through the internal modules the sources import


# Dependency rules, one per line. A pattern is space-separated module prefixes: "tensorflow" is
# tensorflow and tensorflow.*; a leading dot is relative to the package (".layers" is
# rdc_keras.layers and its submodules, "." all of rdc_keras); "!" excludes (". !.cli" is every
# module outside rdc_keras.cli). A rule whose sources match no module (no such file yet) is skipped.
TF = "tensorflow tensorflow_compression tensorflow_compression_ops keras tf_keras"
RULES = [
    Rule("layers-not-trainers-or-cli", ".layers", ".trainers .cli", transitive=True),
    Rule("theory-without-tensorflow", ".theory", TF, transitive=True),
    Rule("export-not-codec-or-trainers", ".export .serving", ".codec .trainers", transitive=True),
    Rule("library-not-cli", ". !.cli", ".cli", transitive=True),
    Rule(
        "tfc-only-in-codec",
        ". !.codec",
        "tensorflow_compression tensorflow_compression_ops",
        transitive=False,
    ),
    Rule("prior-numpy-only", ".prior", TF, transitive=True),
    Rule("readers-not-trainers", ".evaluation .realism .runs .serving", ".trainers", True),
    Rule(
        "report-without-tensorflow",
        ".study_report .tradeoff .spread .files .errors .packing",
        TF,
        True,
    ),
    Rule("keras-only-in-tfkeras", ". !.tfkeras", "keras tf_keras", transitive=False),
]


# ------------------------------------------------------------------------------------------------
# The checker


@dataclasses.dataclass
class ImportGraph:
    """Who imports what; every edge maps its target to the line of its first import statement."""

    root: str  # the top-level package name
    files: dict[str, pathlib.Path]  # module -> source file
    internal: dict[str, dict[str, int]]  # module -> {internal module: line}
    external: dict[str, dict[str, int]]  # module -> {external dotted name: line}
    unresolved: dict[str, dict[str, int]]  # module -> {internal name with no file: line}

    def where(self, module: str, line: int) -> str:
        """`path:line` of an import statement, relative to the package's parent directory."""
        base = self.files[self.root].parent.parent
        return f"{self.files[module].relative_to(base).as_posix()}:{line}"

    def ancestors(self, module: str) -> list[str]:
        """Parent packages of `module` (Python runs their __init__ before the module)."""
        parts = module.split(".")
        return [name for i in range(1, len(parts)) if (name := ".".join(parts[:i])) in self.files]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement below `node` (functions included), except under TYPE_CHECKING."""
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
        return
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        children: list[ast.AST] | Iterator[ast.AST] = node.orelse
    else:
        children = ast.iter_child_nodes(node)
    for child in children:
        yield from _import_nodes(child)


def _targets(
    node: ast.Import | ast.ImportFrom, module: str, is_package: bool, files: dict[str, pathlib.Path]
) -> Iterator[tuple[str, str]]:
    """(kind, name) for each name `node` imports; kind is internal, external or unresolved."""
    root = module.split(".")[0]

    def classify(name: str) -> tuple[str, str]:
        if name.split(".")[0] != root:
            return "external", name
        return ("internal" if name in files else "unresolved"), name

    if isinstance(node, ast.Import):
        for alias in node.names:
            yield classify(alias.name)
        return
    if node.level:
        parts = module.split(".")[: None if is_package else -1]
        parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join([*parts, *([node.module] if node.module else [])])
    else:
        base = node.module or ""
    if base.split(".")[0] != root:
        yield "external", base
        return
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        yield classify(submodule if submodule in files else base)


def build_graph(package_dir: pathlib.Path) -> ImportGraph:
    """Parse every .py file below `package_dir` and resolve its imports."""
    files: dict[str, pathlib.Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = ImportGraph(package_dir.name, files, {}, {}, {})
    for module, path in files.items():
        edges: dict[str, dict[str, int]] = {"internal": {}, "external": {}, "unresolved": {}}
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _import_nodes(tree):
            for kind, name in _targets(node, module, path.name == "__init__.py", files):
                if name != module:  # a module importing itself is a no-op
                    edges[kind].setdefault(name, node.lineno)
        graph.internal[module] = edges["internal"]
        graph.external[module] = edges["external"]
        graph.unresolved[module] = edges["unresolved"]
    return graph


def _strongly_connected(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's strongly connected components, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            components.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return components


def find_cycles(graph: ImportGraph) -> list[list[str]]:
    """One shortest cycle [a, b, ..., a] per strongly connected component of internal imports."""
    cycles = []
    for component in _strongly_connected(graph.internal):
        if len(component) < 2:
            continue
        start, members = component[0], set(component)
        chains = {start: [start]}
        queue = collections.deque([start])
        while queue:
            module = queue.popleft()
            if start in graph.internal[module]:
                cycles.append([*chains[module], start])
                break
            for target in sorted(members.intersection(graph.internal[module]) - chains.keys()):
                chains[target] = [*chains[module], target]
                queue.append(target)
    return sorted(cycles)


def _matches(name: str, pattern: str, root: str) -> bool:
    """Whether `name` matches a RULES pattern (see the comment above RULES)."""
    included = excluded = False
    for item in pattern.split():
        negated = item.startswith("!")
        prefix = item.lstrip("!")
        if prefix.startswith("."):
            prefix = root + prefix.rstrip(".")
        if name == prefix or name.startswith(prefix + "."):
            excluded |= negated
            included |= not negated
    return included and not excluded


def rule_sources(graph: ImportGraph, rule: Rule) -> list[str]:
    """The modules `rule` constrains."""
    return sorted(m for m in graph.files if _matches(m, rule.sources, graph.root))


def rule_violations(graph: ImportGraph, rule: Rule) -> list[str]:
    """Each forbidden import as `source -> ... -> target  (path:line)`, shortest chains first."""
    found = []
    for source in rule_sources(graph, rule):
        chains = {source: [source]}
        queue = collections.deque([source])
        while queue:
            module = queue.popleft()
            edges = {**graph.internal[module], **graph.external[module]}
            for target, line in sorted(edges.items()):
                chain = " -> ".join([*chains[module], target])
                if _matches(target, rule.forbidden, graph.root):
                    found.append(f"{chain}  ({graph.where(module, line)})")
                elif rule.transitive and target in graph.internal and target not in chains:
                    chains[target] = [*chains[module], target]
                    queue.append(target)
            if rule.transitive:  # importing a.b.c also runs a/__init__ and a/b/__init__
                for parent in graph.ancestors(module):
                    if parent not in chains and not _matches(parent, rule.forbidden, graph.root):
                        chains[parent] = [*chains[module], parent]
                        queue.append(parent)
    return found


@functools.cache
def _rdc_graph() -> ImportGraph:
    return build_graph(PACKAGE_DIR)


def _located(graph: ImportGraph, chain: list[str]) -> str:
    """A cycle chain with where each of its imports is."""
    steps = [
        f"{a} -> {b}  ({graph.where(a, graph.internal[a][b])})"
        for a, b in itertools.pairwise(chain)
    ]
    return " -> ".join(chain) + "".join(f"\n    {step}" for step in steps)


# ------------------------------------------------------------------------------------------------
# The package


def test_no_import_cycles():
    graph = _rdc_graph()
    cycles = find_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(_located(graph, c) for c in cycles)


@pytest.mark.parametrize("rule", RULES, ids=[rule.name for rule in RULES])
def test_dependency_rule(rule: Rule):
    graph = _rdc_graph()
    if not rule_sources(graph, rule):
        pytest.skip(f"no module matches {rule.sources!r}")
    violations = rule_violations(graph, rule)
    assert not violations, f"{rule.name}: {rule.sources!r} must not import {rule.forbidden!r}\n" + (
        "\n".join(violations)
    )


def test_every_internal_import_names_a_module():
    graph = _rdc_graph()
    dangling = [
        f"{module} -> {name}  ({graph.where(module, line)})"
        for module, names in sorted(graph.unresolved.items())
        for name, line in sorted(names.items())
    ]
    assert not dangling, "imports of rdc_keras modules that have no file:\n" + "\n".join(dangling)


def test_the_parser_sees_the_whole_package():
    graph = _rdc_graph()
    assert len(graph.files) >= 20
    assert sum(len(deps) for deps in graph.internal.values()) >= 30
    assert "rdc_keras.layers.quantization" in graph.internal["rdc_keras.layers"]
    assert "tensorflow" in graph.external["rdc_keras.layers.quantization"]


def test_keras_is_named_in_one_module():
    """`tf.keras` is Keras 3 on TF >= 2.16: all other code takes Keras from rdc_keras.tfkeras."""
    needle = "tf" + ".keras"
    # tfkeras owns the choice; its test and this one name tf.keras on purpose.
    owners = (
        PACKAGE_DIR / "tfkeras.py",
        pathlib.Path(__file__).resolve(),
        REPO_ROOT / "tests" / "test_tfkeras.py",
    )
    offenders = [
        f"{path.relative_to(REPO_ROOT)}:{number}"
        for folder in ("rdc_keras", "tests", "bench", "examples")
        for path in sorted((REPO_ROOT / folder).rglob("*"))
        if path.suffix in (".py", ".ipynb") and path not in owners
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if needle in line.replace("rdc_keras.tfkeras", "")
    ]
    assert not offenders, f"use `from rdc_keras.tfkeras import keras` at {offenders}"


# ------------------------------------------------------------------------------------------------
# The checker itself, on a fake package

FAKE_PACKAGE = {
    "__init__.py": '"""Imports nothing."""\n',
    "a.py": "import os\n\nfrom . import b\nfrom .sub import leaf\n",
    "b.py": (
        "from typing import TYPE_CHECKING\n\n"
        "if TYPE_CHECKING:\n"
        "    from fakepkg import cli\n\n\n"
        "def late():\n"
        "    from fakepkg.a import thing\n\n"
        "    return thing\n"
    ),
    "cli.py": "import fakepkg.gone\nimport fakepkg.sub\nfrom fakepkg import a, not_a_module\n",
    "sub/__init__.py": "from fakepkg.sub.leaf import value\n",
    "sub/leaf.py": "import numpy as np\n\nfrom fakepkg.sub import other\n\nvalue = np.pi\n",
    "sub/other.py": (
        "class Thing:\n    def run(self):\n        import tensorflow as tf\n\n        return tf\n"
    ),
}


@pytest.fixture()
def fake_graph(tmp_path: pathlib.Path) -> ImportGraph:
    for name, source in FAKE_PACKAGE.items():
        path = tmp_path / "fakepkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return build_graph(tmp_path / "fakepkg")


def test_checker_finds_exactly_the_fake_edges(fake_graph: ImportGraph):
    assert {m: set(deps) for m, deps in fake_graph.internal.items()} == {
        "fakepkg": set(),
        "fakepkg.a": {"fakepkg.b", "fakepkg.sub.leaf"},  # relative imports
        "fakepkg.b": {"fakepkg.a"},  # inside a function; not the TYPE_CHECKING one
        "fakepkg.cli": {"fakepkg", "fakepkg.a", "fakepkg.sub"},
        "fakepkg.sub": {"fakepkg.sub.leaf"},
        "fakepkg.sub.leaf": {"fakepkg.sub.other"},  # its own package's submodule, not the package
        "fakepkg.sub.other": set(),
    }
    assert {m: set(deps) for m, deps in fake_graph.external.items() if deps} == {
        "fakepkg.a": {"os"},
        "fakepkg.b": {"typing"},
        "fakepkg.sub.leaf": {"numpy"},
        "fakepkg.sub.other": {"tensorflow"},
    }
    assert fake_graph.unresolved["fakepkg.cli"] == {"fakepkg.gone": 1}
    assert fake_graph.internal["fakepkg.b"] == {"fakepkg.a": 8}


def test_checker_finds_the_fake_cycle(fake_graph: ImportGraph):
    assert find_cycles(fake_graph) == [["fakepkg.a", "fakepkg.b", "fakepkg.a"]]


def test_checker_applies_rules_to_the_fake_package(fake_graph: ImportGraph):
    def violations(sources: str, forbidden: str, transitive: bool) -> list[str]:
        return rule_violations(fake_graph, Rule("fake", sources, forbidden, transitive))

    assert violations(".a", "tensorflow", transitive=True) == [
        "fakepkg.a -> fakepkg.sub.leaf -> fakepkg.sub.other -> tensorflow  (fakepkg/sub/other.py:3)"
    ]
    assert violations(".a", "tensorflow", transitive=False) == []
    assert violations(".", "tensorflow", transitive=False) == [
        "fakepkg.sub.other -> tensorflow  (fakepkg/sub/other.py:3)"
    ]
    assert violations(". !.sub.other", "tensorflow", transitive=False) == []
    assert violations(".sub", ".cli", transitive=True) == []  # the TYPE_CHECKING import
    assert violations(".cli", ".b", transitive=True) == [
        "fakepkg.cli -> fakepkg.a -> fakepkg.b  (fakepkg/a.py:3)"
    ]


# ------------------------------------------------------------------------------------------------
# As a script: print the graph


def main() -> int:
    """Print the internal graph, its cycles and every rule; 1 if anything is wrong."""
    graph = _rdc_graph()
    for module, deps in sorted(graph.internal.items()):
        print(f"{module} -> {', '.join(sorted(deps)) or '(none)'}")
    cycles = find_cycles(graph)
    print("cycles: " + ("none" if not cycles else ""))
    for cycle in cycles:
        print("  " + _located(graph, cycle).replace("\n", "\n  "))
    bad = bool(cycles)
    for module, names in sorted(graph.unresolved.items()):
        for name, line in sorted(names.items()):
            print(f"unresolved: {module} -> {name}  ({graph.where(module, line)})")
            bad = True
    for rule in RULES:
        violations = rule_violations(graph, rule)
        verdict = "ok" if rule_sources(graph, rule) else "skipped (no such module)"
        print(f"{rule.name}: {verdict if not violations else 'VIOLATED'}")
        for violation in violations:
            print(f"  {violation}")
        bad |= bool(violations)
    return int(bad)


if __name__ == "__main__":
    sys.exit(main())
