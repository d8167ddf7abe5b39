"""Exact symbolic mathematics (SymPy): the `tool:math` specialist.

Understands instructions such as "differentiate x^3 sin(x) with respect to x",
"integrate x^2 from 0 to 1", "solve x^2 - 4 = 0 for x", "simplify ...", "evaluate ... at x = 2".
The output is a plain SymPy expression (or number) so a later sub-task can use it as input.
"""

from __future__ import annotations

import re

import sympy
from sympy.parsing.sympy_parser import (
    convert_xor,
    implicit_multiplication_application,
    parse_expr,
    standard_transformations,
)

from prsm.errors import ModelCallFailed

MAX_EXPRESSION_CHARS = 300

# parse_expr evaluates Python: only whitelisted characters and names ever reach it, and no
# attribute access (a dot is allowed only inside a number).
_ALLOWED_CHARS = re.compile(r"^[0-9A-Za-z_+\-*/^().,=\s]+$")
_ATTRIBUTE_ACCESS = re.compile(r"[A-Za-z_)\]]\s*\.|\.\s*[A-Za-z_]")
_SAFE_NAMES = [
    "sin",
    "cos",
    "tan",
    "cot",
    "sec",
    "csc",
    "asin",
    "acos",
    "atan",
    "sinh",
    "cosh",
    "tanh",
    "exp",
    "log",
    "sqrt",
    "Abs",
    "factorial",
    "pi",
    "E",
    "I",
    "oo",
    "Integer",
    "Float",
    "Rational",
    "Symbol",
    "Function",
]
_GLOBALS = {name: getattr(sympy, name) for name in _SAFE_NAMES} | {"ln": sympy.log}
_TRANSFORMS = standard_transformations + (implicit_multiplication_application, convert_xor)

_OPERATION = re.compile(
    r"^(?:please\s+)?(?:find\s+|compute\s+|calculate\s+)?(?:the\s+)?"
    r"(?P<op>differentiate|derivative\s+of|d/d(?P<dvar>[a-z])|integrate|integral\s+of|solve|"
    r"simplify|expand|factor|evaluate|compute|calculate|what\s+is)\s+(?P<rest>.+)$",
    re.IGNORECASE | re.DOTALL,
)


def parse(expression: str) -> sympy.Expr:
    text = expression.strip()
    if not text:
        raise ModelCallFailed("empty expression", "instruction")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ModelCallFailed(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    if not _ALLOWED_CHARS.match(text) or "__" in text or _ATTRIBUTE_ACCESS.search(text):
        raise ModelCallFailed(f"not a mathematical expression: {text!r}", "instruction")
    try:
        return parse_expr(text, local_dict={}, global_dict=dict(_GLOBALS), transformations=_TRANSFORMS)
    except Exception as exc:  # SymPy raises many types for bad syntax
        raise ModelCallFailed(f"cannot parse {text!r}: {exc}", "instruction") from exc


def _variable(expr: sympy.Expr, name: str | None) -> sympy.Symbol:
    if name:
        return sympy.Symbol(name)
    free = sorted(expr.free_symbols, key=str)
    if len(free) != 1:
        raise ModelCallFailed("say which variable ('with respect to x')", "instruction")
    return free[0]


def _split(rest: str, pattern: str) -> tuple[str, re.Match | None]:
    match = re.search(pattern, rest, re.IGNORECASE)
    return (rest[: match.start()], match) if match else (rest, None)


def _format_number(value: sympy.Expr) -> str:
    if value.is_Integer or value.is_Rational:
        return str(value)
    number = sympy.N(value, 12)
    return str(number) if number.is_number else str(value)


def solve_math(instruction: str) -> str:
    text = instruction.strip().rstrip("?!. ")
    match = _OPERATION.match(text)
    if not match:
        raise ModelCallFailed(
            "start with differentiate, integrate, solve, simplify, expand, factor or evaluate",
            "instruction",
        )
    op = match["op"].lower()
    rest = match["rest"]
    if op.startswith("d/d"):
        op, rest = "differentiate", f"{rest} with respect to {match['dvar']}"

    if op in ("differentiate", "derivative of"):
        rest, wrt = _split(rest, r"\s+(?:with\s+respect\s+to|wrt)\s+([a-z]\w*)\s*$")
        expr = parse(rest)
        return str(sympy.diff(expr, _variable(expr, wrt and wrt[1])))

    if op in ("integrate", "integral of"):
        rest, bounds = _split(rest, r"\s+from\s+(.+?)\s+to\s+(.+)$")
        rest, wrt = _split(rest, r"\s+(?:with\s+respect\s+to|wrt|d)\s*([a-z]\w*)\s*$")
        expr = parse(rest)
        var = _variable(expr, wrt and wrt[1])
        if bounds:
            return _format_number(sympy.integrate(expr, (var, parse(bounds[1]), parse(bounds[2]))))
        return str(sympy.integrate(expr, var))

    if op == "solve":
        rest, wrt = _split(rest, r"\s+for\s+([a-z]\w*)\s*$")
        left, _, right = rest.partition("=")
        equation = sympy.Eq(parse(left), parse(right) if right.strip() else sympy.Integer(0))
        var = _variable(equation.lhs - equation.rhs, wrt and wrt[1])
        solutions = sympy.solve(equation, var)
        if not solutions:
            return f"no solution for {var}"
        return ", ".join(f"{var} = {s}" for s in solutions)

    if op in ("simplify", "expand", "factor"):
        return str(getattr(sympy, op)(parse(rest)))

    # evaluate / compute / calculate / what is
    rest, at = _split(rest, r"\s+(?:at|where|with|for)\s+(.+)$")
    expr = parse(rest)
    if at:
        subs = {}
        for assignment in re.split(r",|\band\b", at[1]):
            name, eq, value = assignment.partition("=")
            if not eq or not name.strip():
                raise ModelCallFailed(f"cannot read assignment {assignment.strip()!r}")
            subs[sympy.Symbol(name.strip())] = parse(value)
        expr = expr.subs(subs)
    return _format_number(sympy.simplify(expr))
