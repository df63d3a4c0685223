"""``trl-latent dift|grpo --help`` read from the configs' source, before torch, TRL or DeepSpeed are imported.

The real parser (``TrlParser`` over the script arguments, the trainer config and ``ModelConfig``) needs the config
classes, and importing them imports TRL, transformers, torch and DeepSpeed: 17–40 s before one line of help. The
help needs only the dataclass fields, so they are read from the classes' source files with :mod:`ast` (found with
``importlib.util.find_spec``, which locates a package without running it), following base classes, imports and
TRL's / transformers' lazy ``_import_structure`` tables. Fields are grouped by the class that defines them: the
latent/method options (the classes of this package) first, then TRL's and transformers' classes. When anything
cannot be read this way (another TRL layout), :func:`static_help` returns ``None`` and the real parser answers.
tests/test_scripts_common.py checks that both list the same flags with the same defaults.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

# (module, class) of the dataclasses each command parses, in TrlParser's order
COMMAND_CLASSES = {
    "dift": (("trl_latent.scripts.dift", "LatentImageryScriptArguments"),
             ("trl_latent.dift.dift_config", "LatentImageryConfig"), ("trl", "ModelConfig")),
    "grpo": (("trl_latent.scripts.grpo", "LatentGRPOScriptArguments"),
             ("trl_latent.grpo.latent_grpo_config", "LatentGRPOConfig"), ("trl", "ModelConfig")),
    "quickstart": (("trl_latent.quickstart.config", "QuickstartConfig"),),
}
RECIPE_COMMANDS = ("dift", "grpo")  # TrlParser: --config RECIPE.yaml
OURS = "trl_latent"


class Unreadable(Exception):
    """The source does not say statically what is needed."""


@dataclass
class Field:
    name: str
    owner: str  # "module.Class" that defines (or last overrides) it
    annotation: str
    default: Any
    help: str
    choices: list | None
    aliases: list[str]


@cache
def _module(name: str) -> tuple[Path, ast.Module]:
    top, *rest = name.split(".")
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        raise Unreadable(name)
    base = Path(next(iter(spec.submodule_search_locations))).joinpath(*rest)
    path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    if not path.is_file():
        raise Unreadable(name)
    return path, ast.parse(path.read_text(encoding="utf-8"))


def _absolute(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".")
    is_package = _module(module)[0].name == "__init__.py"
    package = package if is_package else package[:-1]
    package = package[: len(package) - node.level + 1]
    return ".".join(package + ([node.module] if node.module else []))


def _resolve(module: str, name: str, depth: int = 0) -> tuple[str, ast.AST]:
    """``(module, node)`` of the top-level definition (class, function or assigned value) of ``name``."""
    if depth > 8:
        raise Unreadable(f"{module}.{name}")
    tree = _module(module)[1]
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name == name:
            return module, node
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return module, node.value
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name and node.value:
            return module, node.value
    for node in ast.walk(tree):  # imports, including TYPE_CHECKING blocks and lazy packages' eager branch
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    return _resolve(_absolute(module, node), alias.name, depth + 1)
    for node in tree.body:  # transformers / TRL: _import_structure = {"submodule": ["Name", ...]}
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_import_structure"
                                                for t in node.targets) and isinstance(node.value, ast.Dict):
            for key, value in zip(node.value.keys, node.value.values, strict=True):
                if isinstance(value, ast.List) and any(isinstance(e, ast.Constant) and e.value == name
                                                       for e in value.elts):
                    return _resolve(f"{module}.{key.value}", name, depth + 1)
    raise Unreadable(f"{module}.{name}")


def _constant(name: ast.Name, module: str) -> tuple[ast.AST, str]:
    """``(expression, module)`` a module-level constant's name stands for; a class or function is unreadable."""
    owner, found = _resolve(module, name.id)
    if isinstance(found, (ast.ClassDef, ast.FunctionDef)):
        raise Unreadable(name.id)
    return found, owner


def _value(node: ast.AST, module: str) -> Any:
    """The value of a constant expression: literals, arithmetic, names of module constants, list()/tuple()."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return type({ast.List: [], ast.Tuple: (), ast.Set: set()}[type(node)])(_value(e, module) for e in node.elts)
    if isinstance(node, ast.Dict):
        return {_value(k, module): _value(v, module) for k, v in zip(node.keys, node.values, strict=True)}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_value(node.operand, module)
    if isinstance(node, ast.BinOp):
        left, right = _value(node.left, module), _value(node.right, module)
        operations = {ast.Add: lambda: left + right, ast.Mult: lambda: left * right, ast.Sub: lambda: left - right}
        if type(node.op) in operations:
            return operations[type(node.op)]()
    if isinstance(node, ast.Name):
        return _value(*_constant(node, module))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("list", "tuple", "sorted"):
        return {"list": list, "tuple": tuple, "sorted": sorted}[node.func.id](_value(node.args[0], module))
    if isinstance(node, ast.Lambda):
        return _value(node.body, module)
    if isinstance(node, ast.JoinedStr):  # help texts that list a module's choices: f"one of {', '.join(NAMES)}"
        return "".join(_formatted(part, module) for part in node.values)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "join"
            and isinstance(node.func.value, ast.Constant) and isinstance(node.func.value.value, str)
            and len(node.args) == 1 and not node.keywords):
        return node.func.value.value.join(str(member) for member in _members(node.args[0], module))
    raise Unreadable(ast.unparse(node))


def _formatted(part: ast.AST, module: str) -> str:
    """One piece of an f-string: its text, or a ``{value}`` without conversion or format spec."""
    if isinstance(part, ast.Constant):
        return str(part.value)
    if isinstance(part, ast.FormattedValue) and part.conversion == -1 and part.format_spec is None:
        return str(_value(part.value, module))
    raise Unreadable(ast.unparse(part))


def _members(node: ast.AST, module: str) -> list:
    """What iterating a constant collection gives: a sequence's items, a dict's keys. A dict's values are never
    read (they may be calls), its ``**`` entries are expanded, and a dict comprehension of literals is evaluated
    with no builtins (so nothing but literal arithmetic can run)."""
    if isinstance(node, ast.Name):
        return _members(*_constant(node, module))
    if isinstance(node, ast.Dict):
        members: list = []
        for key, value in zip(node.keys, node.values, strict=True):
            members += _members(value, module) if key is None else [_value(key, module)]
        return members
    if isinstance(node, ast.DictComp):
        try:
            return list(eval(compile(ast.Expression(node), module, "eval"), {"__builtins__": {}}))
        except Exception as error:  # a name or call the comprehension needs: not readable from source
            raise Unreadable(ast.unparse(node)) from error
    return list(_value(node, module))


def _shown(node: ast.AST | None, module: str) -> Any:
    """A default for the help text: its value, else its source (``IntervalStrategy.STEPS``)."""
    if node is None:
        return None
    try:
        return _value(node, module)
    except (Unreadable, KeyError, TypeError, AttributeError):
        return ast.unparse(node)


def _field_call(node: ast.AST, module: str) -> tuple[ast.Call, str] | None:
    """The ``field(...)`` call a value is, directly or returned by a helper such as ``prompt_suffix_field()``."""
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        return None
    if node.func.id == "field":
        return node, module
    owner, function = _resolve(module, node.func.id)
    if isinstance(function, ast.FunctionDef):
        returns = [n.value for n in ast.walk(function) if isinstance(n, ast.Return) and n.value is not None]
        if len(returns) == 1:
            return _field_call(returns[0], owner)
    return None


def _enum_choices(annotation: ast.AST, module: str) -> list | None:
    """The values of an ``Enum`` named in a field's type (``Union[IntervalStrategy, str]``), as HfArgumentParser
    offers them; ``Literal[...]`` values likewise."""
    if isinstance(annotation, ast.Subscript) and ast.unparse(annotation.value).endswith("Literal"):
        values = _shown(annotation.slice, module)
        return list(values) if isinstance(values, tuple) else [values]
    for node in _union_members(annotation):
        if isinstance(node, ast.Name) and node.id not in ("str", "int", "float", "bool", "None"):
            try:
                owner, cls = _resolve(module, node.id)
            except Unreadable:
                continue
            if isinstance(cls, ast.ClassDef) and any("Enum" in ast.unparse(b) for b in cls.bases):
                return [n.value.value for n in cls.body if isinstance(n, ast.Assign)
                        and isinstance(n.value, ast.Constant)]
    return None


def _union_members(annotation: ast.AST) -> list[ast.AST]:
    """``X | Y``, ``Union[X, Y]``, ``Optional[X]`` → their members; anything else → itself (``list[Enum]`` offers
    no choices, as in HfArgumentParser)."""
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        return _union_members(annotation.left) + _union_members(annotation.right)
    if isinstance(annotation, ast.Subscript) and ast.unparse(annotation.value).split(".")[-1] in ("Union", "Optional"):
        members = annotation.slice.elts if isinstance(annotation.slice, ast.Tuple) else [annotation.slice]
        return [m for member in members for m in _union_members(member)]
    return [annotation]


def _own_fields(module: str, cls: ast.ClassDef) -> list[Field]:
    fields = []
    for node in cls.body:
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
            continue
        annotation = ast.unparse(node.annotation)
        if annotation.startswith(("ClassVar", "typing.ClassVar", "InitVar")):
            continue
        default, metadata = node.value, {}
        call = _field_call(node.value, module) if node.value is not None else None
        if call is not None:
            call, where = call
            kwargs = {k.arg: k.value for k in call.keywords}
            if "init" in kwargs and _shown(kwargs["init"], where) is False:
                continue
            default = kwargs.get("default")
            factory = kwargs.get("default_factory")
            if isinstance(factory, ast.Name) and factory.id in ("list", "dict"):
                default = ast.List(elts=[]) if factory.id == "list" else ast.Dict(keys=[], values=[])
            elif factory is not None:
                default = factory
            metadata = _shown(kwargs["metadata"], where) if "metadata" in kwargs else {}
            metadata = metadata if isinstance(metadata, dict) else {}
        else:
            where = module
        aliases = metadata.get("aliases") or []
        choices = metadata.get("choices") if isinstance(metadata.get("choices"), (list, tuple)) else None
        fields.append(Field(node.target.id, f"{module}.{cls.name}", annotation, _shown(default, where),
                            str(metadata.get("help", "")), choices or _enum_choices(node.annotation, module),
                            [aliases] if isinstance(aliases, str) else list(aliases)))
    return fields


def _mro(module: str, name: str) -> list[tuple[str, ast.ClassDef]]:
    """C3 linearisation of a class read from source (``object`` and typing generics left out)."""
    owner, cls = _resolve(module, name)
    if not isinstance(cls, ast.ClassDef):
        raise Unreadable(name)
    bases = [ast.unparse(b).rsplit(".", 1)[-1] for b in cls.bases]
    sequences = [_mro(owner, base) for base in bases if base != "object" and not base.startswith("Generic")]
    sequences.append([seq[0] for seq in sequences])
    result = [(owner, cls)]
    while sequences := [seq for seq in sequences if seq]:
        head = next((seq[0] for seq in sequences if not any(seq[0] in other[1:] for other in sequences)), None)
        if head is None:
            raise Unreadable(f"no MRO for {name}")
        result.append(head)
        sequences = [[item for item in seq if item != head] for seq in sequences]
    return result


def dataclass_fields(module: str, name: str) -> list[Field]:
    """The fields of a dataclass in ``dataclasses.fields`` order: bases first, an override keeping its place."""
    fields: dict[str, Field] = {}
    for owner, cls in reversed(_mro(module, name)):
        for field in _own_fields(owner, cls):
            fields[field.name] = field
    return list(fields.values())


def _is_bool(annotation: str) -> bool:
    return annotation.replace(" ", "") in ("bool", "bool|None", "Optional[bool]", "Union[bool,None]")


def _add(group: argparse._ArgumentGroup, field: Field) -> None:
    options = [f"--{field.name}"] + ([f"--{field.name.replace('_', '-')}"] if "_" in field.name else [])
    kwargs: dict[str, Any] = {"help": field.help, "default": field.default, "dest": field.name}
    if field.choices:
        kwargs["choices"] = field.choices
    if _is_bool(field.annotation):
        kwargs.update(nargs="?", const=True, default=False if field.default is None and field.annotation == "bool"
                      else field.default)
    elif field.annotation.startswith(("list", "List")):
        kwargs["nargs"] = "+"
    group.add_argument(*options, *field.aliases, **kwargs)
    if field.default is True and _is_bool(field.annotation):
        group.add_argument(f"--no_{field.name}", f"--no-{field.name.replace('_', '-')}", action="store_false",
                           dest=field.name, default=False, help=field.help)


def _group_title(owner: str) -> str:
    module, cls = owner.rsplit(".", 1)
    library = module.split(".")[0]
    return f"{cls} ({'trl-latent' if library == OURS else {'trl': 'TRL'}.get(library, library)})"


def build_parser(command: str) -> argparse.ArgumentParser:
    """An argparse parser holding every flag of ``trl-latent <command>``, for its help; ours first."""
    recipe = command in RECIPE_COMMANDS
    parser = argparse.ArgumentParser(
        prog=f"trl-latent {command}", usage="%(prog)s [-h] [--config RECIPE.yaml] [--<field> VALUE ...]" if recipe
        else None, formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Every field below can be set in the YAML recipe given with --config (same names); a flag "
                    "overrides the recipe. Flags use underscores like TRL (--per_device_train_batch_size); dashed "
                    "aliases also work. The latent/method options come first, then TRL's and transformers'."
                    if recipe else None,
    )
    fields: dict[str, Field] = {}
    for module, name in COMMAND_CLASSES[command]:
        for field in dataclass_fields(module, name):
            fields.setdefault(field.name, field)
    owners = sorted(dict.fromkeys(f.owner for f in fields.values()), key=lambda o: not o.startswith(OURS + "."))
    groups = {}
    for owner in owners:
        title = _group_title(owner)
        groups[owner] = groups.get(title) or parser.add_argument_group(title)
        groups[title] = groups[owner]
    for field in sorted(fields.values(), key=lambda f: owners.index(f.owner)):
        _add(groups[field.owner], field)
    return parser


def static_help(command: str) -> str | None:
    """The help text of ``trl-latent <command>``, or ``None`` when it cannot be read from source (or the command
    has no recipe parser)."""
    if command not in COMMAND_CLASSES:
        return None
    try:
        return build_parser(command).format_help()
    except (Unreadable, OSError, SyntaxError, ValueError, KeyError, TypeError):
        return None
