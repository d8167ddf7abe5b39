"""Mathematics written in words, read into the math tool's notation; and what each exact tool can
take, so the planner sends a sub-task to a tool exactly when the tool can answer it.

"what is 12% of 350" -> "evaluate (12/100)*(350)", "multiply 6 by 3" -> "evaluate (6)*(3)",
"the square root of 144 plus 2" -> "evaluate sqrt(144)+2", "the derivative of x^2 sin(x)" ->
"differentiate x^2 sin(x)", "find x if 2x + 3 = 15" -> "solve 2x + 3 = 15 for x".

Only rewriting of text happens here: nothing is evaluated, and no SymPy is imported, so the
planner (in NWTN) can use it. Whatever is left that is not mathematics is refused later by the
math tool's parser (a word is no variable), never guessed at.
"""

from __future__ import annotations

import re

NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
# An operand in words: a number, a name or call, or a bracketed group (one level).
_ATOM = rf"(?:{NUMBER}|[A-Za-z_]\w*(?:\([^()]*\))?|\([^()]*\))"
_OPERAND = rf"(?:{_ATOM}(?:\s*(?:\^|\*\*)\s*{_ATOM})?)"

_THOUSANDS = re.compile(r"(?<![\d.])\d{1,3}(?:,\d{3})+(?![\d,])")
_ASK = re.compile(
    r"^(?:please\s+|now\s+)?(?:(?:can|could)\s+you\s+)?(?:what\s+is|what's|whats|how\s+much\s+is|"
    r"compute|calculate|find|work\s+out|determine|give(?:\s+me)?|evaluate|tell\s+me|take|round(?:\s+off)?)\s+"
    r"(?:the\s+value\s+of\s+)?",
    re.I,
)
_CALCULUS = (
    (re.compile(r"^(?:the\s+)?second\s+derivative\s+of\s+", re.I), "second derivative of "),
    (re.compile(r"^(?:the\s+)?(?:first\s+)?derivative\s+of\s+", re.I), "differentiate "),
    (re.compile(r"^(?:the\s+)?(?:definite\s+|indefinite\s+)?integral\s+of\s+", re.I), "integrate "),
    (re.compile(r"^(?:the\s+)?limit\s+of\s+", re.I), "limit "),
    (re.compile(r"^(?:the\s+)?(?:roots?|zeros?|zeroes)\s+of\s+(?P<f>.+)$", re.I), r"solve \g<f> = 0"),
)
_UNKNOWN_IF = re.compile(
    r"^(?:the\s+value\s+of\s+)?(?P<var>[a-z])\s+(?:if|when|given|such\s+that|where)\s+(?P<eq>.+=.+)$", re.I
)
_IF_THEN_WHAT = re.compile(
    r"^(?:if|given(?:\s+that)?|suppose)\s+(?P<eq>[^,]+=[^,]+?)\s*,?\s*(?:then\s+)?"
    r"(?:what\s+is|what's|find|solve\s+for|compute)\s+(?:the\s+value\s+of\s+)?(?P<var>[a-z])$",
    re.I,
)
_SOLVE_FOR_COLON = re.compile(
    r"^solve\s+for\s+(?P<var>[a-z])\s*[:,]?\s+(?:if\s+|when\s+)?(?P<eq>.+=.+)$", re.I
)

# (pattern, replacement) rewrites inside an expression, applied in order until nothing changes.
_O = _OPERAND
_PCT = r"(?:%|percent\b|per\s+cent\b)"  # "15%", "15 percent", "15 per cent"
_REWRITES = tuple(
    (re.compile(p, re.I), r)
    for p, r in (
        # percentages
        (rf"\bwhat\s+percent(?:age)?\s+of\s+({_O})\s+is\s+({_O})", r"100*(\2)/(\1)"),
        (rf"\bwhat\s+percent(?:age)?\s+is\s+({_O})\s+of\s+({_O})", r"100*(\1)/(\2)"),
        (rf"({_O})\s+as\s+a\s+percent(?:age)?\s+of\s+({_O})", r"100*(\1)/(\2)"),
        (
            rf"\b(?:increase|raise)\s+({_O})\s+by\s+({_O})\s*{_PCT}",
            r"(\1)*(1+(\2)/100)",
        ),
        (
            rf"\b(?:decrease|reduce|lower)\s+({_O})\s+by\s+({_O})\s*{_PCT}",
            r"(\1)*(1-(\2)/100)",
        ),
        (
            rf"({_O})\s+(?:increased|raised)\s+by\s+({_O})\s*{_PCT}",
            r"(\1)*(1+(\2)/100)",
        ),
        (
            rf"({_O})\s+(?:decreased|reduced|lowered)\s+by\s+({_O})\s*{_PCT}",
            r"(\1)*(1-(\2)/100)",
        ),
        (rf"({_O})\s*{_PCT}\s+more\s+than\s+({_O})", r"(\2)*(1+(\1)/100)"),
        (rf"({_O})\s*{_PCT}\s+less\s+than\s+({_O})", r"(\2)*(1-(\1)/100)"),
        (  # "the percentage increase from 50 to 75": of the first; a decrease is counted positive
            rf"\b(?:the\s+)?percent(?:age)?\s+(?:increase|change|growth|gain)\s+(?:from|between)\s+({_O})\s+(?:to|and)\s+({_O})",
            r"100*((\2)-(\1))/(\1)",
        ),
        (
            rf"\b(?:the\s+)?percent(?:age)?\s+(?:decrease|drop|fall|loss|reduction)\s+(?:from|between)\s+({_O})\s+(?:to|and)\s+({_O})",
            r"100*((\1)-(\2))/(\1)",
        ),
        (rf"({_O})\s+choose\s+({_O})", r"binomial(\1, \2)"),
        (  # points in the plane: "(1, 2) and (3, 8)"
            rf"\b(?:the\s+)?distance\s+(?:between|from)\s+(?:the\s+)?(?:points?\s+)?\(\s*({NUMBER})\s*,\s*({NUMBER})\s*\)"
            rf"\s+(?:and|to)\s+(?:the\s+point\s+)?\(\s*({NUMBER})\s*,\s*({NUMBER})\s*\)",
            r"sqrt(((\3)-(\1))^2+((\4)-(\2))^2)",
        ),
        (
            rf"\b(?:the\s+)?(?:slope|gradient)\s+of\s+the\s+(?:straight\s+)?line\s+(?:through|between|joining|connecting|"
            rf"passing\s+through)\s+(?:the\s+points?\s+)?\(\s*({NUMBER})\s*,\s*({NUMBER})\s*\)\s+and\s+\(\s*({NUMBER})\s*,\s*({NUMBER})\s*\)",
            r"((\4)-(\2))/((\3)-(\1))",
        ),
        (
            rf"^({NUMBER})\s+(?:as|in)\s+(?:a\s+)?(?:fraction|ratio)(?:\s+in\s+(?:its\s+)?(?:lowest|simplest)\s+terms)?$",
            r"fraction(\1)",
        ),
        (rf"({_O})\s*{_PCT}\s+of\s+", r"(\1/100)*"),
        (rf"\b({NUMBER}\s*/\s*{NUMBER})\s+of\s+", r"(\1)*"),
        (rf"({NUMBER})\s*{_PCT}", r"(\1/100)"),
        (r"^(.+?)\s+(?:as\s+a|in)\s+percent(?:age)?$", r"100*(\1)"),
        # functions and powers in words
        (rf"\b(?:the\s+)?square\s+root\s+of\s+({_O})", r"sqrt(\1)"),
        (rf"\b(?:the\s+)?cube\s+root\s+of\s+({_O})", r"cbrt(\1)"),
        (rf"\b(?:the\s+)?natural\s+(?:log|logarithm)\s+of\s+({_O})", r"ln(\1)"),
        (
            rf"\b(?:the\s+)?(?:log|logarithm)\s+(?:base\s+|to\s+the\s+base\s+)({_O})\s+of\s+({_O})",
            r"log(\2, \1)",
        ),
        (rf"\b(?:the\s+)?(?:base[-\s]10\s+|common\s+)(?:log|logarithm)\s+of\s+({_O})", r"log(\1, 10)"),
        (rf"\b(?:the\s+)?(?:log|logarithm)\s+of\s+({_O})", r"log(\1)"),
        (  # "the sine of 30 degrees", "cos 45°": degrees are radians times pi/180
            rf"\b(?:the\s+)?(sine|cosine|tangent|sin|cos|tan)\s*(?:of\s+)?(\(\s*)?({NUMBER})\s*(?:°|degrees?\b|deg\b)(?(2)\s*\))",
            lambda m: f"{_FN_NAMES[m[1].lower()]}({m[3]}*pi/180)",
        ),
        (
            rf"\b(?:the\s+)?(sine|cosine|tangent|sin|cos|tan)\s+of\s+({_O})",
            lambda m: f"{_FN_NAMES[m[1].lower()]}({m[2]})",
        ),
        (rf"\b(?:the\s+)?absolute\s+value\s+of\s+({_O})", r"Abs(\1)"),
        (rf"\b(?:the\s+)?factorial\s+of\s+({_O})", r"factorial(\1)"),
        (rf"({_O})\s+factorial\b(?!\s*\()", r"factorial(\1)"),
        (rf"\b(?:the\s+)?(?:reciprocal|inverse)\s+of\s+({_O})", r"1/(\1)"),
        (rf"\b(?:the\s+)?square\s+of\s+({_O})", r"(\1)^2"),
        (rf"\b(?:the\s+)?cube\s+of\s+({_O})", r"(\1)^3"),
        (rf"({_O})\s+squared\b", r"(\1)^2"),
        (rf"({_O})\s+cubed\b", r"(\1)^3"),
        (rf"({_O})\s+(?:raised\s+)?to\s+the\s+power\s+of\s+({_O})", r"(\1)^(\2)"),
        (rf"({_O})\s+raised\s+to\s+({_O})", r"(\1)^(\2)"),
        (rf"({_O})\s+to\s+the\s+({NUMBER})(?:st|nd|rd|th)\s+power\b", r"(\1)^(\2)"),
        (rf"\bhalf\s+of\s+({_O})", r"(\1)/2"),
        (rf"\b(?:twice|double)\s+({_O})", r"2*(\1)"),
        (rf"\btriple\s+({_O})", r"3*(\1)"),
        # whole-instruction forms: "multiply A by B", "the sum of A and B"
        (r"^multiply\s+(.+?)\s+(?:by|and|with)\s+(.+)$", r"(\1)*(\2)"),
        (r"^divide\s+(.+?)\s+by\s+(.+)$", r"(\1)/(\2)"),
        (r"^divide\s+(.+?)\s+into\s+(.+)$", r"(\2)/(\1)"),
        (r"^add\s+(.+?)\s+(?:to|and)\s+(.+)$", r"(\1)+(\2)"),
        (r"^subtract\s+(.+?)\s+from\s+(.+)$", r"(\2)-(\1)"),
        (r"^square\s+(.+)$", r"(\1)^2"),
        (r"^cube\s+(.+)$", r"(\1)^3"),
        (r"^(?:the\s+)?sum\s+of\s+(.+?)\s+and\s+(.+)$", r"(\1)+(\2)"),
        (r"^(?:the\s+)?product\s+of\s+(.+?)\s+and\s+(.+)$", r"(\1)*(\2)"),
        (r"^(?:the\s+)?difference\s+(?:between|of)\s+(.+?)\s+and\s+(.+)$", r"(\1)-(\2)"),
        (r"^(?:the\s+)?quotient\s+of\s+(.+?)\s+(?:and|by|over)\s+(.+)$", r"(\1)/(\2)"),
        (r"^(?:the\s+)?ratio\s+of\s+(.+?)\s+to\s+(.+)$", r"(\1)/(\2)"),
        (
            r"^(?:the\s+)?remainder\s+(?:when|of|after)\s+(.+?)\s+(?:is\s+)?divided\s+by\s+(.+)$",
            r"Mod(\1, \2)",
        ),
        (rf"^({_O})\s+(?:mod|modulo)\s+({_O})$", r"Mod(\1, \2)"),
        # infix operators in words
        (r"\s+plus\s+", "+"),
        (r"\s+minus\s+", "-"),
        (r"\s+(?:times|multiplied\s+by)\s+", "*"),
        (r"\s+divided\s+by\s+", "/"),
        (rf"(?<=\d)\s+x\s+(?={NUMBER})", "*"),
    )
)
_FN_NAMES = {"sine": "sin", "cosine": "cos", "tangent": "tan", "sin": "sin", "cos": "cos", "tan": "tan"}
# "3.5 × 10^4": one number, whatever stands around it ("3.5 × 10^4 divided by 7 × 10^2" is 50);
# a number that is itself an exponent or a factor ("10^999 * 10^999", "2*3 x 10^4") is left alone
_SCIENTIFIC = re.compile(
    rf"(?<![\w.^*])({NUMBER})\s*(?:×|·|\*|\s[xX]\s)\s*10\s*(?:\^|\*\*)\s*(\()?\s*([-+]?\d{{1,3}})(?(2)\s*\))"
)
# "If f(x) = x^2 + 3x, what is f(2)?", "given g(t) = 3t - 1, find g(4)"
_FUNCTION_AT = re.compile(
    r"^(?:if|given(?:\s+that)?|let|suppose|for)\s+(?P<f>[a-z])\((?P<var>[a-z])\)\s*=\s*(?P<body>[^,;]+?)\s*[,;]?\s*"
    r"(?:then\s+)?(?:what\s+is|what's|find|compute|calculate|evaluate)\s+(?P=f)\(\s*(?P<at>[-+]?[\d./]+)\s*\)$",
    re.I,
)
_AVERAGE = re.compile(r"^(?:the\s+)?(?:average|mean|arithmetic\s+mean)\s+of\s+(?P<items>.+)$", re.I)
# "How many ways can you choose 3 items from 10?", "how many combinations of 2 from 5": n choose k.
_CHOOSE = re.compile(
    r"^(?:in\s+)?how\s+many\s+(?:different\s+)?(?:ways|combinations)\s+(?:can\s+(?:you|one|we|i)\s+|are\s+there\s+(?:to\s+)?|"
    r"to\s+|of\s+|is\s+it\s+possible\s+to\s+)?(?:choose|pick|select)?\s*(?P<k>\d{1,4})\s+(?:\w+\s+){0,2}?"
    r"(?:from|out\s+of|among)\s+(?:a\s+(?:group|set)\s+of\s+)?(?P<n>\d{1,4})(?:\s+\w+){0,2}$",
    re.I,
)
# "solve the system x + y = 10 and x - y = 2": equations joined by "and", "," or ";".
_SYSTEM = re.compile(
    r"^solve\s+(?:the\s+)?(?:(?:linear\s+)?system\s+(?:of\s+equations\s+)?:?\s*|equations\s+|simultaneous\s+equations\s+)"
    r"(?P<equations>[^=]+=[^=]+(?:(?:,\s*(?:and\s+)?|\s+and\s+|;\s*)[^=]+=[^=]+)+)$",
    re.I,
)
# "the greatest common divisor of 48 and 180", "the LCM of 4, 6 and 10": gcd(...) / lcm(...) of
# two numbers, nested for more.
_COMMON = re.compile(
    r"^(?:the\s+)?(?P<kind>(?:greatest|highest|largest)\s+common\s+(?:divisor|factor)|gcd|gcf|hcf|"
    r"(?:least|lowest|smallest)\s+common\s+multiple|lcm)\s+of\s+(?P<items>.+)$",
    re.I,
)
# Sums with a closed form: "the sum of the first 100 positive integers" (n(n+1)/2), of the first
# n odd numbers (n^2), even numbers (n(n+1)), squares, cubes; "the sum of the integers from 1 to
# 50" ((a+b)(b-a+1)/2).
_FIRST_N = re.compile(
    r"^(?:the\s+)?sum\s+of\s+(?:all\s+)?(?:the\s+)?first\s+(?P<n>\d{1,6})\s+(?:positive\s+|natural\s+|whole\s+|counting\s+)?"
    r"(?P<kind>odd|even|square|perfect\s+square|cube)?\s*(?:natural\s+|whole\s+|positive\s+)?"
    r"(?:integers|numbers|squares|cubes)$",
    re.I,
)
_FROM_TO = re.compile(
    r"^(?:the\s+)?sum\s+of\s+(?:all\s+)?(?:the\s+)?(?:integers|whole\s+numbers|numbers)\s+from\s+"
    r"(?P<a>-?\d{1,9})\s+(?:to|through|up\s+to)\s+(?P<b>-?\d{1,9})(?:\s+inclusive)?$",
    re.I,
)
_SERIES = {
    None: "({n})*({n}+1)/2",
    "odd": "({n})^2",
    "even": "({n})*({n}+1)",
    "square": "({n})*({n}+1)*(2*({n})+1)/6",
    "perfect square": "({n})*({n}+1)*(2*({n})+1)/6",
    "cube": "(({n})*({n}+1)/2)^2",
}


_MEDIAN = re.compile(
    r"^(?:the\s+)?median\s+(?:value\s+)?of\s+(?:the\s+(?:numbers|values|data)\s+)?(?P<items>.+)$", re.I
)


def _items(text: str) -> list[str]:
    """The items of a list written "a, b and c"."""
    return [p.strip() for p in re.split(r",\s*(?:and\s+)?|\s+and\s+", text) if p.strip()]


def _median(items: str) -> str | None:
    """The middle of plain numbers in order (the mean of the two middle ones for an even count)."""
    parts = _items(items)
    if len(parts) < 2 or len(parts) > 1000 or not all(re.fullmatch(NUMBER, p) for p in parts):
        return None
    ordered = sorted(parts, key=float)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return f"({ordered[middle]})"
    return f"(({ordered[middle - 1]})+({ordered[middle]}))/2"


def _common(match: re.Match) -> str | None:
    parts = _items(match["items"])
    if len(parts) < 2:
        return None
    name = "lcm" if re.search(r"multiple|lcm", match["kind"], re.I) else "gcd"
    expression = f"({_rewrite(parts[0])})"
    for part in parts[1:]:
        expression = f"{name}({expression}, ({_rewrite(part)}))"
    return expression


def _series(rest: str) -> str | None:
    first = _FIRST_N.match(rest)
    if first:
        kind = first["kind"]
        if kind is None and re.search(r"squares$", rest, re.I):
            kind = "square"
        elif kind is None and re.search(r"cubes$", rest, re.I):
            kind = "cube"
        return _SERIES[" ".join(kind.lower().split()) if kind else None].format(n=first["n"])
    span = _FROM_TO.match(rest)
    if span and int(span["b"]) >= int(span["a"]):
        a, b = span["a"], span["b"]
        return f"(({a})+({b}))*(({b})-({a})+1)/2"
    return None


def _rewrite(expression: str) -> str:
    text = expression
    for _ in range(20):  # each pass may expose an operand for the next; bounded
        before = text
        for pattern, replacement in _REWRITES:
            text = pattern.sub(replacement, text)
        if text == before:
            break
    return text


def _average(items: str) -> str | None:
    parts = _items(items)
    if len(parts) < 2:
        return None
    return f"({' + '.join(f'({p})' for p in parts)})/{len(parts)}"


_VERB = re.compile(
    r"^(?:differentiate|derivative\s+of|d/d[a-z]\b|integrate|integral\s+of|solve|simplify|expand|"
    r"factor|evaluate|second\s+derivative\s+of|limit)\b",
    re.I,
)


_WORD_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}
_ROUND_TO = (
    r"to\s+(?:the\s+nearest\s+(?P<nearest>whole\s+number|integer|tenth|hundredth|thousandth)"
    r"|(?P<n>\d{1,2}|one|two|three|four|five|six|seven|eight)\s+"
    r"(?P<kind>decimal\s+places?|decimals?|places?|significant\s+(?:figures|digits)|sig\.?\s*figs?))"
)
_ROUNDING = re.compile(
    r",?\s*(?:and\s+)?(?:then\s+)?(?:(?:rounded|round(?:\s+it|\s+the\s+result)?)(?:\s+(?:off\s+)?"
    + _ROUND_TO
    + r")?|(?:correct\s+|accurate\s+|expressed\s+)?"
    + _ROUND_TO.replace("?P<", "?P<x_")
    + r")\s*[?.!]*$",
    re.I,
)
_NEAREST = {"whole number": 0, "integer": 0, "tenth": 1, "hundredth": 2, "thousandth": 3}


def split_rounding(instruction: str) -> tuple[str, tuple[int, bool] | None]:
    """The instruction without a rounding request at its end, and the request: (digits,
    significant?). "..., rounded" is to the nearest whole number; "to 3 significant figures"."""
    match = _ROUNDING.search(instruction)
    if not match:
        return instruction, None
    rest = instruction[: match.start()]
    nearest, n, kind = (
        match["nearest"] or match["x_nearest"],
        match["n"] or match["x_n"],
        match["kind"] or match["x_kind"],
    )
    if nearest:
        return rest, (_NEAREST[" ".join(nearest.lower().split())], False)
    if n:
        return rest, (_WORD_NUMBERS.get(n.lower()) or int(n), bool(re.match(r"sig", kind, re.I)))
    return rest, (0, False)


_FACTORIAL_MARK = re.compile(r"(?<![\w.])(\d{1,4})\s*!(?!=)")


def trim_end(text: str) -> str:
    """The text without the punctuation and spaces at its end, but a factorial's "!" ("... 3!?")."""
    trimmed = text.rstrip("?!. ")
    if re.search(r"(?<![\w.])\d{1,4}$", trimmed) and text[len(trimmed) :].startswith("!"):
        return trimmed + "!"
    return trimmed


def math_instruction(instruction: str) -> str:
    """The instruction in the math tool's own words: an operation verb and expressions.
    Text that is already so, or that is no mathematics, comes back unchanged but for spacing.
    A rounding request at the end is left out (the math tool applies it to the result)."""
    instruction, _ = split_rounding(instruction)
    text = _FACTORIAL_MARK.sub(r"factorial(\1)", trim_end(" ".join(instruction.split()).strip()))
    text = text.rstrip("?!. ")
    text = _THOUSANDS.sub(lambda m: m[0].replace(",", ""), text)
    text = _SCIENTIFIC.sub(r"(\1*10^(\3))", text).replace("×", "*").replace("·", "*")
    function = _FUNCTION_AT.match(text)
    if function:  # "if f(x) = x^2 + 3x, what is f(2)?"
        return f"evaluate {_rewrite(function['body'])} at {function['var']} = {function['at']}"
    asked = _ASK.match(text)
    rest = text[asked.end() :] if asked else text
    if asked and re.match(r"^what\s+.+\s+(?:is|equals)$", rest, re.I):  # "tell me what 3^5 is"
        rest = re.sub(r"^what\s+|\s+(?:is|equals)$", "", rest, flags=re.I)
    solve_for = _SOLVE_FOR_COLON.match(text) or _UNKNOWN_IF.match(rest) or _IF_THEN_WHAT.match(text)
    if solve_for:
        return f"solve {_rewrite(solve_for['eq'])} for {solve_for['var']}"
    counting = _CHOOSE.match(text)
    if counting:
        return f"evaluate binomial({counting['n']}, {counting['k']})"
    system = _SYSTEM.match(rest)
    if system:
        return f"solve {_rewrite(system['equations'])}"
    prime = re.match(r"^is\s+(\d{1,30})\s+(?:a\s+)?prime(?:\s+number)?$", rest, re.I)
    if prime:
        return f"evaluate isprime({prime[1]})"
    median = _MEDIAN.match(rest)
    if median and _median(median["items"]):
        return f"evaluate {_median(median['items'])}"
    primes = re.match(
        r"^(?:the\s+)?prime\s+(?:factori[sz]ation|factors|decomposition)\s+of\s+(\d{1,30})$", rest, re.I
    )
    if primes:
        return f"factor {primes[1]}"
    if _VERB.match(rest):  # "calculate the derivative ..." was stripped to "derivative ..."
        return _rewrite_operands(rest)
    for pattern, replacement in _CALCULUS:
        if pattern.match(rest):
            return _rewrite_operands(pattern.sub(replacement, rest, count=1))
    common = _COMMON.match(rest)
    if common and _common(common):
        return f"evaluate {_common(common)}"
    series = _series(rest)
    if series:
        return f"evaluate {series}"
    average = _AVERAGE.match(rest)
    if average and _average(average["items"]):
        return f"evaluate {_rewrite(_average(average['items']))}"
    rewritten = _rewrite(rest)
    if asked or rewritten != rest:
        return f"evaluate {rewritten}"
    return text


def _rewrite_operands(text: str) -> str:
    """Words inside an operation's expression ("integrate the square root of x from 0 to 4")."""
    verb = _VERB.match(text)
    if not verb:
        return text
    return text[: verb.end()] + " " + _rewrite(text[verb.end() :].strip())


# --- what the math tool takes: the planner's test ----------------------------------------------

_NAME = re.compile(r"[A-Za-z_]\w*")
# Names the math tool reads besides variables: its functions and constants, and the words of its
# operations ("with respect to x", "from 0 to 1", "at x = 2", "as x approaches 0").
_KNOWN_NAMES = frozenset((
    "sin", "cos", "tan", "cot", "sec", "csc", "asin", "acos", "atan", "sinh", "cosh", "tanh", "exp",
    "log", "ln", "sqrt", "cbrt", "Abs", "abs", "factorial", "gcd", "lcm", "Mod", "binomial", "fraction", "isprime", "pi", "E", "e", "I", "oo",
    "with", "respect", "to", "wrt", "from", "for", "at", "where", "and", "d", "dx", "dy", "dt",
    "as", "approaches", "tends", "goes", "evaluated",
))  # fmt: skip
_GREEK = frozenset((
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "mu",
    "nu", "xi", "omicron", "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi", "omega",
))  # fmt: skip


def is_variable(name: str) -> bool:
    """A name the math tool takes as a variable: a letter with digits or a subscript (x, x1,
    v_0), or a Greek letter's name. An English word is not a variable."""
    return bool(re.fullmatch(r"[A-Za-z](?:\d{1,3}|_[A-Za-z0-9]{1,4})?", name)) or name.lower() in _GREEK


def looks_like_math(instruction: str) -> bool:
    """True when the math tool would read `instruction` as an operation on expressions: an
    operation verb (possibly in words) and nothing left that is a word rather than mathematics."""
    text = math_instruction(instruction)
    verb = _VERB.match(text)
    if not verb:
        return False
    body = text[verb.end() :]
    if not re.search(r"[\d=^*/+\-()]|\b[a-z]\b|\b(?:pi|E|oo)\b", body):
        return False
    for name in _NAME.findall(body):
        if name not in _KNOWN_NAMES and name.lower() not in _KNOWN_NAMES and not is_variable(name):
            return False
    return True
