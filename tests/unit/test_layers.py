"""The layers, enforced: data flows route/command -> service -> store, never around.

Every module of a checked package is parsed (not imported) and each of its imports, wherever it appears (inside a
function or an ``if TYPE_CHECKING:`` block too), is compared with what the package may not import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import batchyard

SRC = Path(batchyard.__file__).parent

# package -> the packages it must not import (directly, however the import is spelled)
CHECKED_PACKAGES: dict[str, tuple[str, ...]] = {
    # HTTP routes talk to services (through the app), never to the store.
    "batchyard.api": ("batchyard.store",),
    # The dashboard's pages are an entry point like the routes: services only.
    "batchyard.dashboard": ("batchyard.store",),
    # CLI commands too: local work goes through the app's services, remote work through the client.
    "batchyard.cli": ("batchyard.store",),
    # Services are called by the API and the CLI, and know neither.
    "batchyard.services": ("batchyard.api", "batchyard.cli"),
    # Pure rules: no I/O layer at all.
    "batchyard.core": (
        "batchyard.store",
        "batchyard.services",
        "batchyard.api",
        "batchyard.cli",
        "batchyard.worker",
    ),
    # The worker needs claims and its own registration (worker/backend.py's protocols), not the store or policy.
    "batchyard.worker": ("batchyard.store", "batchyard.services", "batchyard.api", "batchyard.cli"),
    # Reading items and writing result files: below the services, above the store.
    "batchyard.data": ("batchyard.services", "batchyard.api", "batchyard.cli", "batchyard.worker"),
    # All SQL, and nothing above it.
    "batchyard.store": (
        "batchyard.services",
        "batchyard.api",
        "batchyard.cli",
        "batchyard.worker",
        "batchyard.data",
    ),
    # Metrics are recorded by the worker, handlers and maintenance and read by the API: they depend on no layer.
    "batchyard.metrics": (
        "batchyard.store",
        "batchyard.services",
        "batchyard.api",
        "batchyard.cli",
        "batchyard.worker",
        "batchyard.data",
    ),
    # So do logs (their format, the item a handler runs).
    "batchyard.logs": (
        "batchyard.store",
        "batchyard.services",
        "batchyard.api",
        "batchyard.cli",
        "batchyard.worker",
        "batchyard.data",
    ),
    # Built-in handlers run in workers like users' handlers: they see an item and its context, nothing more.
    "batchyard.handlers": (
        "batchyard.store",
        "batchyard.services",
        "batchyard.api",
        "batchyard.cli",
        "batchyard.worker",
    ),
    # Outbound HTTP (sessions, the address guard, limits, retries): below the handlers, above core only.
    "batchyard.outbound": (
        "batchyard.store",
        "batchyard.services",
        "batchyard.api",
        "batchyard.cli",
        "batchyard.worker",
        "batchyard.handlers",
        "batchyard.data",
    ),
    # Notifications (composing a job's email, the SMTP client) are called by the outbox with a job's JSON and
    # the settings: pure composition plus SMTP, no layer.
    "batchyard.notify": (
        "batchyard.store",
        "batchyard.services",
        "batchyard.api",
        "batchyard.cli",
        "batchyard.worker",
    ),
    # The wire schema is shared by server, client and CLI: it depends on no layer.
    "batchyard.wire": ("batchyard.store", "batchyard.api", "batchyard.cli", "batchyard.worker"),
    # So is the OpenAI-compatible schema.
    "batchyard.openai_wire": (
        "batchyard.store",
        "batchyard.services",
        "batchyard.api",
        "batchyard.cli",
        "batchyard.worker",
    ),
}


def modules(package: str) -> list[tuple[str, Path]]:
    """(module name, file) of the package itself and every module under it."""
    path = SRC.joinpath(*package.split(".")[1:])
    if path.with_suffix(".py").is_file():
        return [(package, path.with_suffix(".py"))]
    found = []
    for file in sorted(path.rglob("*.py")):
        parts = file.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found.append((name, file))
    return found


def imported_names(module: str, file: Path) -> list[tuple[int, str]]:
    """(line, dotted name) of everything the module imports; ``from a import b`` counts as ``a.b`` too, so
    ``from batchyard import store`` is caught."""
    tree = ast.parse(file.read_text(), str(file))
    is_package = file.name == "__init__.py"
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names.append((node.lineno, base))
            names += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return names


def forbidden_imports(package: str, banned: tuple[str, ...]) -> list[str]:
    problems = []
    for module, file in modules(package):
        for line, name in imported_names(module, file):
            if any(name == b or name.startswith(b + ".") for b in banned):
                problems.append(f"{file.relative_to(SRC.parent)}:{line}: {module} imports {name}")
    return sorted(set(problems))


def test_checked_packages_exist() -> None:
    for package in CHECKED_PACKAGES:
        assert modules(package), f"{package}: no modules found under {SRC}"


def test_no_layer_imports_past_its_neighbour() -> None:
    problems = [p for package, banned in CHECKED_PACKAGES.items() for p in forbidden_imports(package, banned)]
    assert not problems, "imports that cross a layer:\n" + "\n".join(problems)


def test_the_check_sees_every_spelling(tmp_path: Path) -> None:
    """The parser catches ``import``, ``from ... import``, ``from batchyard import store`` and relative forms."""
    source = (
        "import batchyard.store\n"
        "from batchyard.store.engine import Database\n"
        "from batchyard import store\n"
        "from ...store import Store\n"
        "def f():\n    from batchyard.store import jobs\n"
    )
    file = tmp_path / "mod.py"
    file.write_text(source)
    names = [name for _, name in imported_names("batchyard.api.routes.mod", file)]
    hits = [n for n in names if n == "batchyard.store" or n.startswith("batchyard.store.")]
    assert {line for line, n in imported_names("batchyard.api.routes.mod", file) if n in hits} == {1, 2, 3, 4, 6}
