"""The package's layout follows the data: core below everything, verify above core, the stages above both, and no
stage importing another (what two share moves down). The acceptance checks stay small."""
import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "ftkit"


def ftkit_imports(path: Path) -> set[str]:
    """Every ftkit module a file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "ftkit":
            found |= {f"{node.module}.{a.name}" if node.module == "ftkit" else node.module for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "ftkit"}
    return found


def layer(module: str) -> str:
    """ftkit.stages.train.train -> stages.train; ftkit.core.io -> core; ftkit.report -> report."""
    parts = module.split(".")[1:]
    return ".".join(parts[:2]) if parts and parts[0] == "stages" else (parts[0] if parts else "")


# what each layer may import (besides itself); the stages may import core, config and verify only
ALLOWED = {"core": {"config"}, "config": set(), "verify": {"core", "config"}}
# and one module below its layer: the settings name each family's tiny model from the family files (which import
# nothing but the standard library and ftkit.core.cli)
BELOW = {"config": ("ftkit.core.families", "ftkit.core.cli")}


def test_no_stage_imports_another_and_shared_code_lives_below():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        own = layer(module)
        for imported in ftkit_imports(path):
            other = layer(imported)
            if other in ("", own) or other == "ASSETS" or other == "ROOT":
                continue
            if own.startswith("stages.") and (other.startswith("stages.") or other not in ("core", "config", "verify")):
                wrong.append(f"{module} imports {imported}")
            elif own in ALLOWED and other not in ALLOWED[own] and not imported.startswith(BELOW.get(own, ("-",))):
                wrong.append(f"{module} imports {imported}")
    assert wrong == []


def test_every_acceptance_check_is_small():
    from ftkit.acceptance import ITEMS

    for section, key, _, check in ITEMS:
        lines = len(ast.get_source_segment(Path(check.__code__.co_filename).read_text(encoding="utf-8"),
                                            next(n for n in ast.walk(ast.parse(Path(check.__code__.co_filename)
                                                                               .read_text(encoding="utf-8")))
                                                 if isinstance(n, ast.FunctionDef) and n.name == check.__name__))
                    .splitlines())
        assert lines <= 60, f"{section}.{key}: {lines} lines"
