"""Options as data: what a command or a model family accepts, its kind, default, range and help.

`genlab train FAMILY` builds its options from these records, and the Python API
(`genlab.create`) checks its keywords with the same ranges, so both refuse the same values with
the same one line. An option that sets a field of a frozen config dataclass is derived from it
(`field_options`): kind, default and help (the field's docstring) are written once, there.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import math
import re
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError

KINDS = ("int", "float", "str", "bool", "path", "run", "ints", "floats")
"""int, float, str, bool; path: a file or folder; run: a run directory; ints/floats: tuples."""

INT_MAX = 2**31 - 1


@dataclass(frozen=True)
class Option:
    """One option. `check` turns a value from the command line (a string), a JSON or TOML file or
    Python into the option's type, or raises a one-line GenlabError naming the option."""

    name: str
    """The Python name (`lambda_cycle`); the flag is `--lambda-cycle`."""
    kind: str
    default: Any = None
    """None: not set (the family decides, see the help)."""
    help: str = ""
    min: float | None = None
    max: float | None = None
    min_open: bool = False
    """The minimum itself is excluded (a learning rate > 0)."""
    choices: tuple | None = None
    """The valid values (strings, or numbers for a number option)."""
    nullable: bool = False
    """The word "none" (or None) is a value: turns the feature off."""
    length: int | None = None
    """ints/floats: the exact number of entries (None: any number)."""
    flags: tuple[str, ...] = ()
    """Other spellings of the flag, the first shown, e.g. ("--ema",) for ema_decay."""
    required: bool = False
    of: tuple[str, ...] = ()
    """kind "run": the families the run may be of (empty: any)."""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"option {self.name}: unknown kind {self.kind!r}")

    @property
    def flag(self) -> str:
        """The flag shown: the first of `flags`, else --name-with-dashes (--T keeps its case)."""
        return self.flags[0] if self.flags else "--" + self.name.replace("_", "-")

    @property
    def spellings(self) -> tuple[str, ...]:
        """Every flag that sets the option."""
        derived = "--" + self.name.replace("_", "-")
        return tuple(dict.fromkeys((*self.flags, derived)))

    def bounds(self) -> str:
        """The range as in `genlab ... --help`, e.g. "1<=x<=100000" ("" without one)."""
        if self.min is None and self.max is None:
            return ""
        low = "" if self.min is None else f"{_num(self.min)}{'<' if self.min_open else '<='}"
        high = "" if self.max is None else f"<={_num(self.max)}"
        return f"{low}x{high}"

    def describe(self) -> str:
        """What a valid value is, e.g. "an integer >= 1" or "one of cosine, linear"."""
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        what = {
            "int": "an integer",
            "float": "a finite number",
            "str": "text",
            "bool": "true or false",
            "path": "a path",
            "run": "a run directory",
            "ints": "integers separated by commas",
            "floats": "numbers separated by commas",
        }[self.kind]
        if self.length:
            what = f"{self.length} {what.split(' ', 1)[1]}"
        bounds = []
        if self.min is not None:
            bounds.append(f"{'>' if self.min_open else '>='} {_num(self.min)}")
        if self.max is not None:
            bounds.append(f"<= {_num(self.max)}")
        if bounds and self.kind in ("ints", "floats"):
            what += ", each " + " and ".join(bounds)
        elif bounds:
            what += " " + " and ".join(bounds)
        if self.nullable:
            what += ", or none"
        return what

    def check(self, value: Any) -> Any:
        """The value in the option's type.

        Raises:
            GenlabError: "--flag VALUE: must be <describe()>".
        """
        if value is None or (self.nullable and isinstance(value, str) and value.lower() == "none"):
            if self.nullable or (value is None and self.default is None):
                return None
            raise self._error(value)
        try:
            converted = self._convert(value)
        except (TypeError, ValueError):
            raise self._error(value) from None
        items = converted if self.kind in ("ints", "floats") else (converted,)
        if self.kind in ("int", "float", "ints", "floats"):
            for item in items:
                if not self._in_range(item):
                    raise self._error(value)
        if self.kind in ("ints", "floats") and self.length not in (None, len(items)):
            raise self._error(value)
        if self.choices is not None and converted not in self.choices:
            raise self._error(value)
        return converted

    def _convert(self, value: Any) -> Any:
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "1", "yes", "on"):
                return True
            if text in ("false", "0", "no", "off"):
                return False
            raise ValueError(value)
        if self.kind == "int":
            return _to_int(value)
        if self.kind == "float":
            return _to_float(value)
        if self.kind in ("ints", "floats"):
            convert = _to_int if self.kind == "ints" else _to_float
            if isinstance(value, str):
                parts = [p for p in value.replace(" ", "").split(",") if p != ""]
            elif isinstance(value, Iterable):
                parts = list(value)
            else:
                raise TypeError(value)
            return tuple(convert(p) for p in parts)
        if self.kind in ("path", "run"):
            if not isinstance(value, str | Path) or str(value) == "":
                raise TypeError(value)
            return Path(value)
        if isinstance(value, Path):  # a folder given as a Path for a text option (--data)
            return str(value)
        if not isinstance(value, str):
            raise TypeError(value)
        return value

    def _in_range(self, x: float) -> bool:
        if self.min is not None and (x < self.min or (self.min_open and x == self.min)):
            return False
        return self.max is None or x <= self.max

    def _error(self, value: Any) -> GenlabError:
        shown = value if isinstance(value, str) else repr(value)
        return GenlabError(f"{self.flag} {shown}: must be {self.describe()}")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError(value)
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(value)
        return int(value)
    if isinstance(value, str):
        return int(value.strip().replace("_", ""))
    return int(value)


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError(value)
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(value)
    return x


# ------------------------------------------------------------------------------ from dataclasses


def field_docs(cls: type) -> dict[str, str]:
    """Each field's documentation: a string literal right after the field, or an entry
    `name: text` (or `a, b: text`) of an "Attributes:" section in the class docstring."""
    docs: dict[str, str] = {}
    lines = inspect.cleandoc(cls.__doc__ or "").splitlines()
    if (
        lines
        and lines[0].strip() == "Attributes:"
        or any(line.strip() == "Attributes:" for line in lines)
    ):
        start = next(i for i, line in enumerate(lines) if line.strip() == "Attributes:") + 1
        current: list[str] = []
        text: list[str] = []
        for line in lines[start:] + [""]:
            head, sep, rest = line.partition(":")
            names = [n.strip() for n in head.split(",")]
            starts = sep and not line.startswith(" ") and all(n.isidentifier() for n in names)
            if starts or not line.strip():
                for name in current:
                    docs.setdefault(name, " ".join(text))
                current, text = (names, [rest.strip()]) if starts else ([], [])
            elif current:
                text.append(line.strip())
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return docs
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    for node, after in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = " ".join(inspect.cleandoc(after.value.value).split())
    return docs


def _kind_of(annotation: Any) -> tuple[str, bool]:
    """(kind, nullable) of a dataclass field's annotation (a string under postponed evaluation)."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    text = text or str(annotation)
    nullable = "None" in text
    core = text.replace(" ", "").replace("|None", "").replace("None|", "")
    for prefix, kind in (("tuple[int", "ints"), ("tuple[float", "floats"), ("bool", "bool"),
                         ("int", "int"), ("float", "float"), ("str", "str")):  # fmt: skip
        if core.startswith(prefix):
            return kind, nullable
    raise ValueError(f"no option kind for a field of type {text!r}")


def first_sentence(text: str) -> str:
    """The help of an option: the documentation up to its first full stop ("et al." and "e.g."
    are not one)."""
    match = re.search(r"(?<!\bal)(?<!e\.g)(?<!i\.e)(?<!\bcf)\.\s+(?=[A-Z(0-9])", text)
    return text[: match.start() + 1] if match else text


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def field_options(
    cls: type, *, exclude: Iterable[str] = (), **overrides: Mapping[str, Any]
) -> tuple[Option, ...]:
    """Options for the fields of a frozen config dataclass, in field order.

    Numbers default to the range [0, 2**31 - 1] (integers) or [0, inf) (floats); `overrides`
    maps a field name to Option attributes that replace the derived ones (min, max, choices,
    help, default, ...).
    """
    docs, skip = field_docs(cls), set(exclude)
    unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"{cls.__name__} has no fields {sorted(unknown)}")
    options = []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kind, nullable = _kind_of(f.type)
        spec: dict[str, Any] = {
            "name": f.name,
            "kind": kind,
            "default": f.default if f.default is not dataclasses.MISSING else None,
            "help": _capitalised(first_sentence(docs.get(f.name, ""))),
            "nullable": nullable,
        }
        if kind in ("int", "ints"):
            spec.update(min=0, max=INT_MAX)
        elif kind in ("float", "floats"):
            spec.update(min=0.0)
        spec.update(overrides.get(f.name, {}))
        options.append(Option(**spec))
    return tuple(options)


def check_options(
    options: Mapping[str, Any], known: Mapping[str, Option], what: str
) -> dict[str, Any]:
    """Check every value of `options` against the known options (names with _ or -).

    Raises:
        GenlabError: an unknown name (listing the valid ones) or an invalid value.
    """
    checked = {}
    for key, value in options.items():
        name = key.replace("-", "_").lstrip("_")
        if name not in known:
            valid = ", ".join(sorted(known))
            raise GenlabError(f"{key!r} is not an option of {what}; valid: {valid}")
        checked[name] = known[name].check(value)
    return checked
