"""Exact symbolic mathematics (SymPy): the `tool:math` specialist.

Understands instructions such as "differentiate x^3 sin(x) with respect to x",
"integrate x^2 from 0 to 1", "solve x^2 - 4 = 0 for x", "simplify ...", "evaluate ... at x = 2",
"the limit of sin(x)/x as x approaches 0", and arithmetic in words ("what is 12% of 350",
"multiply 6 by 3": prsm/backends/wording.py). The output is a plain SymPy expression (or number)
so a later sub-task can use it as input.

A word that is not mathematics is refused, never read as a variable: "evaluate the mass of the
earth" is an error, not the product m*a*s*s*... of letters.
"""

from __future__ import annotations

import ast
import decimal
import math
import re

import sympy

from prsm.backends.units_tool import quantity_arithmetic
from prsm.backends.wording import is_variable, math_instruction, split_rounding
from prsm.errors import BadInstruction

MAX_EXPRESSION_CHARS = 300
MAX_INSTRUCTION_CHARS = 600  # an expression in words is longer than one in symbols, not more
MAX_INTEGER_DIGITS = 100  # a literal
MAX_EXPONENT = 1000  # a numeric exponent, and a factorial's argument
MAX_RESULT_DIGITS = 10_000  # a number raised to a number, and any exact number built
MAX_RESULT_BITS = int(MAX_RESULT_DIGITS * math.log2(10)) + 1

# Nothing the user writes is ever evaluated as Python (SymPy's parse_expr would): the text is
# tokenised, implicit multiplication made explicit ("3x^2 sin(x)" -> "3*x**2*sin(x)"), parsed
# by Python's own parser into a tree, and only the tree's whitelisted node types are turned
# into SymPy objects, with caps on sizes checked before any number is computed.
_ALLOWED_CHARS = re.compile(r"^[0-9A-Za-z_+\-*/^().,\s]+$")
_TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+)|(?P<name>[A-Za-z_]\w*)|(?P<op>\*\*|[-+*/(),]))"
)
FUNCTIONS = {
    name: getattr(sympy, name)
    for name in ("sin", "cos", "tan", "cot", "sec", "csc", "asin", "acos", "atan", "sinh", "cosh", "tanh",
                 "exp", "log", "sqrt", "cbrt", "Abs", "factorial")
} | {"ln": sympy.log, "abs": sympy.Abs, "gcd": lambda a, b: _integers(sympy.gcd, a, b),
     "lcm": lambda a, b: _integers(sympy.lcm, a, b), "Mod": lambda a, b: _integers(_remainder, a, b),
     "binomial": lambda n, k: _integers(_choose, n, k), "fraction": lambda x: _fraction(x)}  # fmt: skip
# "e" is Euler's number, as a reader means it in "e^x"; "I" the imaginary unit, "oo" infinity.
CONSTANTS = {"pi": sympy.pi, "E": sympy.E, "e": sympy.E, "I": sympy.I, "oo": sympy.oo, "inf": sympy.oo}
_OPERATORS = {ast.Add: sympy.Add, ast.Mult: sympy.Mul}

_OPERATION = re.compile(
    r"^(?:please\s+)?(?:find\s+|compute\s+|calculate\s+)?(?:the\s+)?"
    r"(?P<op>differentiate|derivative\s+of|second\s+derivative\s+of|d/d(?P<dvar>[a-z])|integrate|"
    r"integral\s+of|solve|simplify|expand|factor|evaluate|limit|compute|calculate|what\s+is)\s+(?P<rest>.+)$",
    re.IGNORECASE | re.DOTALL,
)


def _integers(function, a: sympy.Expr, b: sympy.Expr) -> sympy.Expr:
    """gcd, lcm and remainders of whole numbers (gcd and lcm also of polynomials); a number that
    is not whole is refused."""
    if any(x.is_number and not x.is_integer for x in (a, b)):
        raise BadInstruction(f"{function.__name__} takes whole numbers", "instruction")
    return function(a, b)


def _remainder(a: sympy.Expr, b: sympy.Expr) -> sympy.Expr:
    if not (a.is_number and b.is_number):
        raise BadInstruction("a remainder of whole numbers only", "instruction")
    if b == 0:
        raise BadInstruction("a remainder after dividing by zero", "instruction")
    return sympy.Mod(a, b)


_remainder.__name__ = "remainder"


def _choose(n: sympy.Expr, k: sympy.Expr) -> sympy.Expr:
    if not (n.is_number and k.is_number) or n < 0 or k < 0 or n > MAX_EXPONENT:
        raise BadInstruction(f"n choose k of whole numbers 0 to {MAX_EXPONENT}", "instruction")
    return sympy.binomial(n, k)


_choose.__name__ = "n choose k"


def _fraction(x: sympy.Expr) -> sympy.Expr:
    """A decimal as the fraction it writes: 0.75 is 3/4 (its digits, not its binary float)."""
    if not x.is_number or not x.is_real:
        raise BadInstruction("only a number can be written as a fraction", "instruction")
    return sympy.nsimplify(sympy.Float(x, 15), rational=True) if x.is_Float else x


def tokens(text: str) -> list[tuple[str, str]]:
    """(kind, text) pairs, with `^` read as `**` and the multiplications a person leaves out."""
    text = text.replace("^", "**")
    found, at = [], 0
    while at < len(text.rstrip()):
        match = _TOKEN.match(text, at)
        if match is None:
            raise BadInstruction(f"cannot read {text[at : at + 20]!r}", "instruction")
        kind = match.lastgroup
        found.append((kind, match[kind]))
        at = match.end()
    explicit: list[tuple[str, str]] = []
    for kind, value in found:
        if explicit:
            last_kind, last = explicit[-1]
            ends_operand = (
                last_kind == "number" or last == ")" or (last_kind == "name" and last not in FUNCTIONS)
            )
            starts_operand = kind in ("number", "name") or value == "("
            if ends_operand and starts_operand:
                explicit.append(("op", "*"))
        explicit.append((kind, value))
    return explicit


def parse(expression: str, names: frozenset[str] = frozenset()) -> sympy.Expr:
    """`expression` as SymPy; `names`: more names taken as symbols (a formula table's)."""
    text = expression.strip()
    if not text:
        raise BadInstruction("empty expression", "instruction")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise BadInstruction(f"expression longer than {MAX_EXPRESSION_CHARS} characters", "instruction")
    if not _ALLOWED_CHARS.match(text) or "__" in text:
        raise BadInstruction(f"not a mathematical expression: {text!r}", "instruction")
    source = " ".join(value for _, value in tokens(text))
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise BadInstruction(f"cannot parse {text!r}: {exc.msg}", "instruction") from None
    return _build(tree.body, names)


def _build(node: ast.AST, names: frozenset[str] = frozenset()) -> sympy.Expr:
    built = _build_node(node, names)
    if built.is_Rational and max(abs(built.p), built.q).bit_length() > MAX_RESULT_BITS:
        raise BadInstruction(f"a number over {MAX_RESULT_DIGITS} digits", "instruction")
    return built


def _build_node(node: ast.AST, names: frozenset[str]) -> sympy.Expr:
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        if len(str(node.value)) > MAX_INTEGER_DIGITS:
            raise BadInstruction(f"a number over {MAX_INTEGER_DIGITS} digits", "instruction")
        return sympy.Integer(node.value)
    if isinstance(node, ast.Constant) and isinstance(node.value, float):
        return sympy.Float(node.value)
    if isinstance(node, ast.Name):
        if node.id in names:
            return sympy.Symbol(node.id)
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        if node.id in FUNCTIONS:
            raise BadInstruction(f"{node.id} needs an argument: {node.id}(x)", "instruction")
        if not is_variable(node.id):
            raise BadInstruction(
                f"{node.id!r} is not mathematics this tool reads (a variable is a letter: x, y1, v_0)",
                "instruction",
            )
        return sympy.Symbol(node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        operand = _build(node.operand, names)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp):
        left, right = _build(node.left, names), _build(node.right, names)
        if isinstance(node.op, ast.Add | ast.Mult):
            return _OPERATORS[type(node.op)](left, right)
        if isinstance(node.op, ast.Sub):
            return sympy.Add(left, -right)
        if isinstance(node.op, ast.Div):
            return sympy.Mul(left, sympy.Pow(right, -1))
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
            return sympy.Pow(left, right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS:
        if node.keywords or not node.args or len(node.args) > 2:
            raise BadInstruction(f"{node.func.id}(...) takes one or two plain arguments", "instruction")
        args = [_build(a, names) for a in node.args]
        if node.func.id == "factorial" and args[0].is_number and abs(args[0]) > MAX_EXPONENT:
            raise BadInstruction(f"factorial of more than {MAX_EXPONENT}", "instruction")
        return FUNCTIONS[node.func.id](*args)
    raise BadInstruction("only numbers, variables, + - * / ^, parentheses and math functions", "instruction")


def _check_power(base: sympy.Expr, exponent: sympy.Expr) -> None:
    """Refuse, before computing it, a power whose result no answer needs."""
    if not exponent.is_number:
        return
    if exponent.is_real is not False and abs(exponent) > MAX_EXPONENT:
        raise BadInstruction(f"an exponent over {MAX_EXPONENT}", "instruction")
    if base.is_number and base.is_real and abs(base) > 1 and exponent.is_real:
        digits = float(abs(exponent)) * math.log10(float(abs(base)))
        if digits > MAX_RESULT_DIGITS:
            raise BadInstruction(f"a number over {MAX_RESULT_DIGITS} digits", "instruction")


def _variable(expr: sympy.Expr, name: str | None) -> sympy.Symbol:
    if name:
        return sympy.Symbol(name)
    free = sorted(expr.free_symbols, key=str)
    if len(free) != 1:
        raise BadInstruction("say which variable ('with respect to x')", "instruction")
    return free[0]


def _split(rest: str, pattern: str) -> tuple[str, re.Match | None]:
    match = re.search(pattern, rest, re.IGNORECASE)
    return (rest[: match.start()], match) if match else (rest, None)


def _format_number(value: sympy.Expr) -> str:
    if value.is_Integer or value.is_Rational:
        return str(value)
    number = sympy.N(value, 12)
    if not number.is_number:
        return str(value)
    text = str(number)
    if number.is_Float and "." in text:  # 9.10000000000 -> 9.1, 1.50000000000e+20 -> 1.5e+20
        mantissa, e, exponent = text.partition("e")
        text = mantissa.rstrip("0").rstrip(".") + e + exponent
    return text


@BadInstruction.refusing("SymPy")
def solve_math(instruction: str) -> str:
    if len(instruction) > MAX_INSTRUCTION_CHARS:  # before reading words: that costs CPU per character
        raise BadInstruction(f"an instruction over {MAX_INSTRUCTION_CHARS} characters", "instruction")
    instruction, rounding = split_rounding(instruction)
    answer = _solve(instruction)
    return answer if rounding is None else _rounded(answer, *rounding)


def _rounded(answer: str, digits: int, significant: bool) -> str:
    """A numeric answer rounded half away from zero, as by hand (each of several solutions:
    "x = -1.41, x = 1.41"); anything else is refused."""
    solutions = re.fullmatch(r"(?:[a-z]\w* = [^,=]+)(?:, [a-z]\w* = [^,=]+)*", answer)
    if solutions and "=" in answer:
        parts = [part.partition(" = ") for part in answer.split(", ")]
        return ", ".join(f"{name} = {_rounded(value, digits, significant)}" for name, _, value in parts)
    try:
        value = decimal.Decimal(str(sympy.N(parse(answer), 30)))
    except (BadInstruction, decimal.InvalidOperation, TypeError, ValueError):
        raise BadInstruction(f"only a number can be rounded, not {answer!r}", "instruction") from None
    if not value.is_finite():
        raise BadInstruction(f"only a finite number can be rounded, not {answer!r}", "instruction")
    if significant:
        if digits < 1:
            raise BadInstruction("round to at least one significant figure", "instruction")
        places = digits - 1 - (value.adjusted() if value else 0)
    else:
        places = digits
    result = value.quantize(decimal.Decimal(1).scaleb(-places), rounding=decimal.ROUND_HALF_UP)
    return format(result, "f") if -30 < places <= 30 else str(result)


def _solve(instruction: str) -> str:
    text = math_instruction(instruction)
    match = _OPERATION.match(text)
    if not match:
        raise BadInstruction(
            "start with differentiate, integrate, solve, simplify, expand, factor or evaluate",
            "instruction",
        )
    op = match["op"].lower()
    rest = match["rest"]
    if op.startswith("d/d"):
        op, rest = "differentiate", f"{rest} with respect to {match['dvar']}"

    if op in ("differentiate", "derivative of", "second derivative of"):
        rest, at = _split(rest, r"\s+(?:evaluated\s+|and\s+evaluate\s+(?:it\s+)?)?at\s+([a-z]\w*\s*=.+)$")
        rest, wrt = _split(rest, r"\s+(?:with\s+respect\s+to|wrt)\s+([a-z]\w*)\s*$")
        expr = parse(rest)
        order = 2 if op.startswith("second") else 1
        derivative = sympy.diff(expr, _variable(expr, wrt and wrt[1]), order)
        if at:  # "the derivative of x^2 evaluated at x = 3"
            return _format_number(sympy.simplify(derivative.subs(_assignments(at[1]))))
        return str(derivative)

    if op == "limit":
        rest, to = _split(rest, r"\s+as\s+([a-z]\w*)\s*(?:->|→|approaches|tends\s+to|goes\s+to)\s*(.+)$")
        if not to:
            raise BadInstruction(
                "say where the variable goes: 'limit sin(x)/x as x approaches 0'", "instruction"
            )
        expr = parse(rest)
        return _format_number(sympy.limit(expr, sympy.Symbol(to[1]), parse(to[2])))

    if op in ("integrate", "integral of"):
        rest, bounds = _split(rest, r"\s+from\s+(.+?)\s+to\s+(.+)$")
        rest, wrt = _split(rest, r"\s+(?:with\s+respect\s+to|wrt|d)\s*([a-z]\w*)\s*$")
        expr = parse(rest)
        var = _variable(expr, wrt and wrt[1])
        if bounds:
            return _format_number(sympy.integrate(expr, (var, parse(bounds[1]), parse(bounds[2]))))
        return str(sympy.integrate(expr, var))

    if op == "solve" and rest.count("=") > 1:
        return _solve_system(rest)

    if op == "solve":
        rest, wrt = _split(rest, r"\s+for\s+([a-z]\w*)\s*$")
        left, _, right = rest.partition("=")
        equation = sympy.Eq(parse(left), parse(right) if right.strip() else sympy.Integer(0))
        var = _variable(equation.lhs - equation.rhs, wrt and wrt[1])
        solutions = sympy.solve(equation, var)
        if not solutions:
            return f"no solution for {var}"
        return ", ".join(f"{var} = {s}" for s in solutions)

    n = parse(rest) if op == "factor" else None
    if n is not None and n.is_Integer and abs(n) > 1:  # "factor 360": its primes
        primes = sympy.factorint(n, limit=10**6)
        if any(not sympy.isprime(p) for p in primes):
            raise BadInstruction("an integer with a prime factor past a million", "instruction")
        sign = "-" if n < 0 else ""
        return sign + " * ".join(
            f"{p}^{e}" if e > 1 else str(p) for p, e in sorted(primes.items()) if p != -1
        )

    if op in ("simplify", "expand", "factor"):
        return str(getattr(sympy, op)(parse(rest)))

    # evaluate / compute / calculate / what is
    prime = re.fullmatch(r"\s*isprime\((\d{1,30})\)\s*", rest)
    if prime:  # "is 97 a prime number": yes, or no with its factors
        n = int(prime[1])
        if n < 2:
            return f"no: {n} is not prime (a prime is a whole number above 1)"
        if sympy.isprime(n):
            return f"yes: {n} is prime"
        return f"no: {n} = {_solve(f'factor {n}')}"
    rest, at = _split(rest, r"\s+(?:at|where|with|for)\s+(.+)$")
    try:
        expr = parse(rest)
    except BadInstruction:
        if at is None and _HAS_UNIT.search(rest):  # "(10/100)*6.213711922 mile": a quantity's arithmetic
            return quantity_arithmetic(rest)
        raise
    if at:
        expr = expr.subs(_assignments(at[1]))
    return _format_number(sympy.simplify(expr))


def _solve_system(rest: str) -> str:
    """Equations joined by "and", "," or ";", solved together for their unknowns (at most 6)."""
    rest, wrt = _split(rest, r"\s+for\s+([a-z]\w*(?:\s*(?:,|and)\s*[a-z]\w*)*)\s*$")
    parts = [p for p in re.split(r",\s*(?:and\s+)?|\s+and\s+|;", rest) if p.strip()]
    if len(parts) > 6:
        raise BadInstruction("a system of at most 6 equations", "instruction")
    equations = []
    for part in parts:
        left, eq, right = part.partition("=")
        if not eq or "=" in right:
            raise BadInstruction(f"not an equation: {part.strip()!r}", "instruction")
        equations.append(sympy.Eq(parse(left), parse(right)))
    unknowns = (
        [sympy.Symbol(v) for v in re.split(r"\s*(?:,|and)\s*", wrt[1]) if v]
        if wrt
        else sorted(set().union(*(e.free_symbols for e in equations)), key=str)
    )
    if not unknowns or len(unknowns) > 6:
        raise BadInstruction("a system of 1 to 6 unknowns", "instruction")
    present = set().union(*(e.free_symbols for e in equations))
    missing = [str(v) for v in unknowns if v not in present]
    if missing:
        raise BadInstruction(f"{', '.join(missing)} is in none of the equations", "instruction")
    solutions = sympy.solve(equations, unknowns, dict=True)
    if not solutions:
        return "no solution"
    return "; ".join(", ".join(f"{v} = {sol[v]}" for v in unknowns if v in sol) for sol in solutions)


_HAS_UNIT = re.compile(r"\d\s*(?!(?:at|and|for|with|where)\b)[A-Za-z_]{2,}")


def _assignments(text: str) -> dict:
    subs = {}
    for assignment in re.split(r",|\band\b", text):
        name, eq, value = assignment.partition("=")
        if not eq or not name.strip():
            raise BadInstruction(f"cannot read assignment {assignment.strip()!r}", "instruction")
        subs[sympy.Symbol(name.strip())] = parse(value)
    return subs
