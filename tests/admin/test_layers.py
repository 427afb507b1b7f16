"""The console's shared parts in ``forum`` know no app: the members and exchange admins
import them and register their models and pages with the site, never the other way
round, so no import cycle runs through the admin."""

import ast
from pathlib import Path

import forum

APPS = ("members", "exchange")


def _module_level_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_forum_admin_modules_import_no_app() -> None:
    """``forum/admin_*.py`` import neither ``members`` nor ``exchange`` at module level."""
    modules = sorted(Path(forum.__file__).parent.glob("admin_*.py"))
    assert {m.name for m in modules} >= {"admin_site.py", "admin_helpers.py", "admin_config.py"}
    for module in modules:
        apps = {n for n in _module_level_imports(module) if n.split(".")[0] in APPS}
        assert not apps, f"{module.name} imports {sorted(apps)}"


def test_the_members_admin_modules_import_each_other_only_through_the_package() -> None:
    """No module of ``members/admin/`` imports a sibling: each registers its own admins,
    and only the package's ``__init__`` gathers them."""
    package = Path(forum.__file__).parent.parent / "members" / "admin"
    siblings = {p.stem for p in package.glob("*.py")} - {"__init__"}
    for module in package.glob("*.py"):
        if module.stem == "__init__":
            continue
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                imported = {node.module} if node.module else {a.name for a in node.names}
                assert not imported & siblings, f"{module.name} imports {imported & siblings}"
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("members.admin"):
                raise AssertionError(f"{module.name} imports {node.module}")
