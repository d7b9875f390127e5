"""The architecture, held by a test: the engine knows nothing of the terminal.

The folder list is the architecture (README, Layout): ``service/``,
``transfer/``, ``mirror/``, ``server/`` and ``composer/`` are the engine,
``cli/`` the terminal side. An engine module that imported ``cli``, ``rich``
or ``tqdm`` would tie the library to a terminal; a module that reached into
another's private names would make the split a fiction.
"""

import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "magedl"
ENGINE = ("service", "transfer", "mirror", "server", "composer", "emulator")
TERMINAL = ("magedl.cli", "rich", "tqdm")
MODULES = sorted(PACKAGE.rglob("*.py"))


@functools.lru_cache(maxsize=None)
def parsed(path):
    """The syntax tree of *path*, parsed once per run (the tests only read it; a module is asked about often)."""
    return ast.parse(path.read_text(), str(path))


def imports(path):
    """Every module name *path* imports, with the names it takes from each."""
    tree = parsed(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ()
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module, tuple(a.name for a in node.names)


def rel(path):
    return path.relative_to(PACKAGE.parent).as_posix()


@pytest.mark.parametrize("path", [p for p in MODULES if p.relative_to(PACKAGE).parts[0] in ENGINE], ids=rel)
def test_the_engine_never_imports_the_terminal_side(path):
    bad = [name for name, _ in imports(path) if name == "magedl.cli" or name.startswith(TERMINAL)]
    assert not bad, f"{rel(path)} imports {bad}: the engine must stay free of terminal code"


def module_of(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.lru_cache(maxsize=None)
def defined(path):
    """The names a module defines at its top (functions, classes, assignments), not those it imports."""
    names = set()
    for node in parsed(path).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


HOMES = {module_of(p): p for p in MODULES}


@pytest.mark.parametrize("path", MODULES, ids=rel)
def test_every_name_is_imported_from_its_home(path):
    """No re-exports for old imports: a name comes from the module that defines it (a package's
    ``__init__`` may offer its public names). One home per concept, and a reader finds it at once."""
    bad = []
    for module, names in imports(path):
        home = HOMES.get(module)
        if home is None or home.name == "__init__.py":
            continue
        bad += [f"{module}.{n}" for n in names if n not in defined(home) and f"{module}.{n}" not in HOMES]
    assert not bad, f"{rel(path)} imports {bad} from a module that only passes them on: import them from their home"


@pytest.mark.parametrize("path", [p for p in MODULES if p.name != "__init__.py"], ids=rel)
def test_no_module_keeps_an_unused_import_for_others(path):
    assert "noqa: F401" not in path.read_text(), f"{rel(path)} re-exports names: callers import them from their home"


@pytest.mark.parametrize("path", MODULES, ids=rel)
def test_no_module_takes_another_modules_private_names(path):
    bad = [f"{module}.{name}" for module, names in imports(path) if module.startswith("magedl")
           for name in names if name.startswith("_") and not name.startswith("__")]
    assert not bad, f"{rel(path)} imports private names {bad}: make them public where they live, or move them"


def declared_names(module):
    """The names *module* (dotted) declares public in ``__all__``; None when it has no literal ``__all__``."""
    base = PACKAGE.parent.joinpath(*module.split("."))
    path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    if not path.is_file():
        return None
    for node in parsed(path).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) \
            else []
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            try:
                return set(ast.literal_eval(node.value))
            except ValueError:
                return None
    return None


def is_module(module, name):
    base = PACKAGE.parent.joinpath(*module.split("."), name)
    return base.is_dir() or base.with_suffix(".py").is_file()


def private(name):
    return name.startswith("_") and not name.startswith("__")


@pytest.mark.parametrize("path", [p for p in MODULES if p.relative_to(PACKAGE).parts[0] == "cli"], ids=rel)
def test_the_command_line_uses_only_the_engines_public_names(path):
    """Issue 23: ``cli/`` takes from the engine what each module declares public (``__all__``, else no ``_name``).

    Besides ``from X import _y`` (the rule above), no private module, no ``module._name`` and, where a module
    lists its public names, nothing else of it: the terminal side asks the engine, it does not reach inside.
    """
    tree = parsed(path)
    modules, bad = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("magedl."):
                    modules.add(alias.asname or "magedl")
                    bad += [alias.name] if any(map(private, alias.name.split("."))) else []
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "magedl" \
                and not node.module.startswith("magedl.cli"):
            bad += [node.module] if any(map(private, node.module.split("."))) else []
            public = declared_names(node.module)
            for alias in node.names:
                if is_module(node.module, alias.name):
                    modules.add(alias.asname or alias.name)
                elif public is not None and alias.name not in public:
                    bad.append(f"{node.module}.{alias.name} (not in its __all__)")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and private(node.attr):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in modules:
                bad.append(ast.unparse(node))
    assert not bad, f"{rel(path)} reaches into the engine: {bad}; use (or declare) the module's public names"


@pytest.mark.parametrize("path", MODULES, ids=rel)
def test_no_module_needs_long_scrolling(path):
    lines = len(path.read_text().splitlines())
    assert lines <= 450, f"{rel(path)} has {lines} lines: split it along the concepts it holds"


def test_help_imports_no_network_or_terminal_library_nor_any_command():
    """``magedl --help`` must start at once: requests, rich, tqdm and the command modules load only when used."""
    import subprocess
    import sys

    code = ("import sys; from magedl.cli import main\ntry: main(['--help'])\nexcept SystemExit: pass\n"
            "loaded = [m for m in sys.modules if m in ('requests', 'urllib3', 'rich', 'tqdm') or "
            "m.startswith('magedl.cli.') and m not in ('magedl.cli.app', 'magedl.cli.commands', "
            "'magedl.cli.progress', 'magedl.cli.output')]\nprint(sorted(loaded), file=sys.stderr)")
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stderr
    assert err.strip().splitlines()[-1] == "[]"
