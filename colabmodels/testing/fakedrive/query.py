"""The Drive v2 ``files.list`` search language (``q=``), for the Drive emulator.

``compile_query`` turns a query string into a predicate over Drive v2 file
resources (plain dicts, as the emulator stores them)::

    match = compile_query("'root' in parents and trashed = false",
                          aliases={"root": "0AAroot"})
    match({"title": "a", "parents": [{"id": "0AAroot"}], "labels": {"trashed": False}})

``plan_query`` also says which folders the matches must be in (from
``'ID' in parents`` terms every branch requires), so the emulator can test only
those folders' children instead of every file.

The implementation is a small tokenizer plus a recursive-descent parser that
builds a tree of closures. It is deliberately strict: anything it does not
understand raises ``QueryError`` (the server turns it into a 400
``Invalid Value``) instead of silently matching the wrong files.

Grammar (keywords ``and or not in has contains true false`` are
case-insensitive; field names are case-sensitive, as in the Drive docs)::

    query      := [ or_expr ] EOF                    (empty query matches everything)
    or_expr    := and_expr { "or" and_expr }
    and_expr   := not_expr { "and" not_expr }
    not_expr   := "not" not_expr | primary
    primary    := "(" or_expr ")" | term
    term       := STRING "in" COLLECTION             'id' in parents, 'a@b' in owners
                | "properties" "has" "{" prop { "and" prop } "}"
                | FIELD "contains" STRING            title, mimeType
                | FIELD OP VALUE                     OP is = != < <= > >=
    prop       := ("key" | "value" | "visibility") "=" STRING

Precedence is ``not`` > ``and`` > ``or``, so ``a or b and not c`` means
``a or (b and (not c))``.

String literals use single quotes; inside them ``\\'`` is a quote and ``\\\\``
a backslash (the two escapes the Drive docs describe). Any other backslash
escape, double-quoted literals and unterminated strings are errors.

Supported terms (Drive v2 names):

============================  =======================  ==================================
term                          operators                reads
============================  =======================  ==================================
``title``                     ``= != contains``        ``title``
``mimeType``                  ``= != contains``        ``mimeType``
``modifiedDate``              ``< <= = != > >=``       ``modifiedDate``
``createdDate``               ``< <= = != > >=``       ``createdDate``
``lastViewedByMeDate``        ``< <= = != > >=``       ``lastViewedByMeDate``
``trashed``                   ``= !=``                 ``labels.trashed`` (default false)
``starred``                   ``= !=``                 ``labels.starred`` (default false)
``hidden``                    ``= !=``                 ``labels.hidden`` (default false)
``sharedWithMe``              ``= !=``                 ``sharedWithMe`` (default false)
``shortcutDetails.targetId``  ``= !=``                 ``shortcutDetails.targetId``
``parents``                   ``in``                   ``parents[].id``
``owners``                    ``in``                   ``owners[].emailAddress``
``properties``                ``has``                  ``properties[]``
============================  =======================  ==================================

Differences from the real service, all deliberate and conservative:

* ``title contains`` matches word prefixes, as Drive does: the title and the
  needle are split into words at every character that is not a letter or digit,
  and every needle word must be the start of some title word, ignoring case
  (``'HelloWorld'`` matches ``contains 'Hello'`` but not ``contains 'World'``;
  ``'model_v2.pth'`` matches ``contains 'v2 mod'``). A needle without letters or
  digits falls back to a case-insensitive substring match. ``mimeType contains``
  is a case-insensitive substring match.
* ``'root' in parents`` and ``'me' in owners`` need ``aliases`` (``{"root":
  <root folder id>, "me": <user email>}``); without one the query is rejected
  rather than compared against the literal word.
* ``properties has {...}`` requires ``key`` and ``value``; without
  ``visibility`` it matches a property of any visibility (Drive's behaviour
  here is not documented precisely).
* A date term on a file that lacks that date (e.g. ``lastViewedByMeDate`` of a
  never-viewed file) is false for every operator, including ``!=``.
* ``fullText``, ``writers``, ``readers``, ``visibility`` and Drive v3 terms
  (``name``, ``modifiedTime``...) are not supported and raise ``QueryError``.
  ``compile_drive_query`` is the ``drives.list`` variant (``name``,
  ``hidden``, ``createdTime``, ``memberCount``, ``organizerCount``).
* Dates are RFC 3339 (``2012-06-04T12:00:00``, optional fraction, ``Z`` or
  ``+hh:mm``; no offset means UTC). A bare ``2012-06-04`` is taken as midnight
  UTC.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "Predicate",
    "QueryError",
    "QueryPlan",
    "compile_drive_query",
    "compile_query",
    "parse_rfc3339",
    "plan_query",
    "words_match",
]

Predicate = Callable[[Mapping[str, Any]], bool]
"""A compiled query: takes a Drive v2 file resource, returns whether it matches."""


class QueryError(ValueError):
    """A ``q`` string the emulator does not understand.

    Attributes:
        query: the full query string.
        position: 0-based character offset of the offending token.
        reason: the message without the position suffix.
    """

    def __init__(self, reason: str, *, query: str, position: int) -> None:
        self.query = query
        self.position = position
        self.reason = reason
        near = query[position : position + 20]
        where = f"near {near!r}" if near else "at end of query"
        super().__init__(f"Invalid query: {reason} (at position {position}, {where})")


# --------------------------------------------------------------------------- tokens


@dataclass(frozen=True)
class _Token:
    kind: str  # "string" "word" "number" "op" "(" ")" "{" "}" "eof"
    value: str  # decoded string / word text / operator
    pos: int


_WORD_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_NUMBER_RE: Final = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_OPERATORS: Final = ("!=", "<=", ">=", "=", "<", ">")  # longest first
_BAD_OPERATORS: Final = ("===", "==", "<>", "=<", "=>", "=!", "!==", "&&", "||", "&", "|", "~")
_MAX_DEPTH: Final = 50  # parenthesis nesting; keeps the parser clear of RecursionError
_KEYWORDS: Final = frozenset({"and", "or", "not", "in", "has", "contains", "true", "false"})


def _tokenize(q: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(q)
    while i < n:
        c = q[i]
        if c.isspace():
            i += 1
            continue
        if c in "(){}":
            tokens.append(_Token(c, c, i))
            i += 1
            continue
        if c == "'":
            start = i
            i += 1
            buf: list[str] = []
            while True:
                if i >= n:
                    raise QueryError("unterminated string literal", query=q, position=start)
                ch = q[i]
                if ch == "\\":
                    if i + 1 >= n:
                        raise QueryError("unterminated string literal", query=q, position=start)
                    nxt = q[i + 1]
                    if nxt not in ("'", "\\"):
                        raise QueryError(
                            f"unsupported escape sequence \\{nxt} in string literal "
                            "(only \\' and \\\\ are allowed)",
                            query=q,
                            position=i,
                        )
                    buf.append(nxt)
                    i += 2
                    continue
                if ch == "'":
                    i += 1
                    break
                buf.append(ch)
                i += 1
            tokens.append(_Token("string", "".join(buf), start))
            continue
        if c == '"':
            raise QueryError(
                "string literals must be surrounded by single quotes, not double quotes",
                query=q,
                position=i,
            )
        bad = next((o for o in _BAD_OPERATORS if q.startswith(o, i)), None)
        if bad is not None:
            raise QueryError(
                f"unknown operator {bad!r} (valid: = != < <= > >= contains in has)",
                query=q,
                position=i,
            )
        op = next((o for o in _OPERATORS if q.startswith(o, i)), None)
        if op is not None:
            tokens.append(_Token("op", op, i))
            i += len(op)
            continue
        m = _WORD_RE.match(q, i)
        if m:
            tokens.append(_Token("word", m.group(), i))
            i = m.end()
            continue
        m = _NUMBER_RE.match(q, i)
        if m:
            tokens.append(_Token("number", m.group(), i))
            i = m.end()
            continue
        raise QueryError(f"unexpected character {c!r}", query=q, position=i)
    tokens.append(_Token("eof", "", n))
    return tokens


# --------------------------------------------------------------------------- dates

_DATE_RE: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:\d{2})?)?"
)


def parse_rfc3339(text: str) -> _dt.datetime:
    """Parse an RFC 3339 timestamp as Drive accepts it; return an aware datetime.

    Accepts ``YYYY-MM-DDTHH:MM:SS`` with an optional fraction (any number of
    digits, truncated to microseconds) and an optional ``Z`` / ``+hh:mm`` /
    ``-hh:mm`` offset (none means UTC), or a bare ``YYYY-MM-DD`` (midnight UTC).

    Raises:
        ValueError: if ``text`` is not such a timestamp.
    """
    m = _DATE_RE.fullmatch(text)
    if not m:
        raise ValueError(f"not an RFC 3339 date-time: {text!r}")
    year, month, day, hh, mm, ss, frac, off = m.groups()
    tz: _dt.tzinfo = _dt.timezone.utc
    if off and off not in ("Z", "z"):
        sign = 1 if off[0] == "+" else -1
        oh, om = int(off[1:3]), int(off[4:6])
        if oh > 23 or om > 59:
            raise ValueError(f"bad UTC offset in {text!r}")
        tz = _dt.timezone(sign * _dt.timedelta(hours=oh, minutes=om))
    micro = int((frac or "0")[:6].ljust(6, "0"))
    try:
        return _dt.datetime(
            int(year), int(month), int(day),
            int(hh or 0), int(mm or 0), int(ss or 0), micro, tzinfo=tz,
        )  # fmt: skip
    except ValueError as exc:  # e.g. month 13, Feb 30, second 61
        raise ValueError(f"not a valid date-time: {text!r} ({exc})") from None


# --------------------------------------------------------------------------- fields


def _labels_flag(name: str) -> Callable[[Mapping[str, Any]], bool]:
    def get(f: Mapping[str, Any]) -> bool:
        labels = f.get("labels") or {}
        return bool(labels.get(name, False))

    return get


def _shortcut_target(f: Mapping[str, Any]) -> Any:
    details = f.get("shortcutDetails") or {}
    return details.get("targetId")


# term -> getter for the simple comparison terms
_STRING_FIELDS: Final[dict[str, Callable[[Mapping[str, Any]], Any]]] = {
    "title": lambda f: f.get("title"),
    "mimeType": lambda f: f.get("mimeType"),
    "shortcutDetails.targetId": _shortcut_target,
}
_CONTAINS_FIELDS: Final = frozenset({"title", "mimeType"})
_DATE_FIELDS: Final = ("modifiedDate", "createdDate", "lastViewedByMeDate")
_BOOL_FIELDS: Final[dict[str, Callable[[Mapping[str, Any]], bool]]] = {
    "trashed": _labels_flag("trashed"),
    "starred": _labels_flag("starred"),
    "hidden": _labels_flag("hidden"),
    "sharedWithMe": lambda f: bool(f.get("sharedWithMe", False)),
}
_COLLECTIONS: Final[tuple[str, ...]] = ("parents", "owners")
_COLLECTION_ALIASES: Final = {"parents": "root", "owners": "me"}

# Terms that exist in some Drive search language but that the emulator refuses.
_UNSUPPORTED: Final[dict[str, str]] = {
    "fullText": "full-text search is not supported by the emulator",
    "writers": "'writers' needs permissions, not supported by the emulator",
    "readers": "'readers' needs permissions, not supported by the emulator",
    "visibility": "'visibility' is not supported by the emulator",
    "name": "'name' is a Drive v3 term; Drive v2 uses 'title'",
    "modifiedTime": "'modifiedTime' is a Drive v3 term; Drive v2 uses 'modifiedDate'",
    "createdTime": "'createdTime' is a Drive v3 term; Drive v2 uses 'createdDate'",
    "viewedByMeTime": "'viewedByMeTime' is a Drive v3 term; Drive v2 uses 'lastViewedByMeDate'",
    "appProperties": (
        "'appProperties' is a Drive v3 term; Drive v2 uses "
        "properties has { ... visibility='PRIVATE' }"
    ),
    "memberCount": "'memberCount' is a shared-drive term, not supported by the emulator",
    "organizerCount": "'organizerCount' is a shared-drive term, not supported by the emulator",
    "orgUnitId": "'orgUnitId' is a shared-drive term, not supported by the emulator",
}

_ALL_TERMS: Final = frozenset(
    [*_STRING_FIELDS, *_DATE_FIELDS, *_BOOL_FIELDS, *_COLLECTIONS, "properties"]
)


_WORD_SPLIT: Final = re.compile(r"[^0-9a-z]+")


def _words(text: str) -> list[str]:
    return [w for w in _WORD_SPLIT.split(text.casefold()) if w]


def words_match(needle: str, haystack: str) -> bool:
    """Drive's ``title contains``: every word of ``needle`` starts some word of ``haystack``.

    Words are runs of letters and digits, compared without case. A needle with
    no words is a plain case-insensitive substring test.
    """
    wanted = _words(needle)
    if not wanted:
        return needle.casefold() in haystack.casefold()
    have = _words(haystack)
    return all(any(h.startswith(w) for h in have) for w in wanted)


def _all(preds: Sequence[Predicate]) -> Predicate:
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:  # the usual "'F' in parents and trashed = false", without a generator
        first, second = preds
        return lambda f: first(f) and second(f)
    parts = tuple(preds)
    return lambda f: all(p(f) for p in parts)


def _any(preds: Sequence[Predicate]) -> Predicate:
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        first, second = preds
        return lambda f: first(f) or second(f)
    parts = tuple(preds)
    return lambda f: any(p(f) for p in parts)


def _not(a: Predicate) -> Predicate:
    return lambda f: not a(f)


_COMPARE: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


# --------------------------------------------------------------------------- parser


class _Parser:
    STRING_FIELDS: Mapping[str, Callable[[Mapping[str, Any]], Any]] = _STRING_FIELDS
    CONTAINS_FIELDS: frozenset[str] = _CONTAINS_FIELDS
    PREFIX_FIELDS: frozenset[str] = frozenset({"title"})
    DATE_FIELDS: tuple[str, ...] = _DATE_FIELDS
    BOOL_FIELDS: Mapping[str, Callable[[Mapping[str, Any]], bool]] = _BOOL_FIELDS
    NUMBER_FIELDS: frozenset[str] = frozenset()
    COLLECTIONS: tuple[str, ...] = _COLLECTIONS
    UNSUPPORTED: Mapping[str, str] = _UNSUPPORTED
    ALL_TERMS: frozenset[str] = _ALL_TERMS

    def __init__(self, q: str, aliases: Mapping[str, str]) -> None:
        self.q = q
        self.aliases = aliases
        self.tokens = _tokenize(q)
        self.i = 0
        self.depth = 0
        # id(predicate) -> folder ids one of which every file it accepts has as a parent
        self._scopes: dict[int, frozenset[str]] = {}
        self._scoped: list[Predicate] = []  # keeps those predicates (and so their ids) alive
        self.scope: frozenset[str] | None = None

    def _set_scope(self, pred: Predicate, scope: frozenset[str]) -> Predicate:
        self._scopes[id(pred)] = scope
        self._scoped.append(pred)
        return pred

    # -- helpers
    def _peek(self) -> _Token:
        return self.tokens[self.i]

    def _next(self) -> _Token:
        tok = self.tokens[self.i]
        if tok.kind != "eof":
            self.i += 1
        return tok

    def _error(self, reason: str, tok: _Token | None = None) -> QueryError:
        tok = tok or self._peek()
        return QueryError(reason, query=self.q, position=tok.pos)

    @staticmethod
    def _describe(tok: _Token) -> str:
        if tok.kind == "eof":
            return "end of query"
        if tok.kind == "string":
            return f"string {tok.value!r}"
        return repr(tok.value)

    def _is_kw(self, tok: _Token, kw: str) -> bool:
        return tok.kind == "word" and tok.value.lower() == kw

    def _expect_kw(self, kw: str, context: str) -> _Token:
        tok = self._next()
        if not self._is_kw(tok, kw):
            raise self._error(f"expected '{kw}' {context}, found {self._describe(tok)}", tok)
        return tok

    def _expect(self, kind: str, context: str) -> _Token:
        tok = self._next()
        if tok.kind != kind:
            what = "a string literal in single quotes" if kind == "string" else repr(kind)
            raise self._error(f"expected {what} {context}, found {self._describe(tok)}", tok)
        return tok

    # -- grammar
    def parse(self) -> Predicate:
        if self._peek().kind == "eof":
            return lambda f: True
        pred = self._or_expr()
        self.scope = self._scopes.get(id(pred))
        tok = self._peek()
        if tok.kind != "eof":
            if tok.kind == ")":
                raise self._error("unbalanced ')'", tok)
            raise self._error(
                f"expected 'and', 'or' or end of query, found {self._describe(tok)}", tok
            )
        return pred

    def _or_expr(self) -> Predicate:
        preds = [self._and_expr()]
        while self._is_kw(self._peek(), "or"):
            self._next()
            preds.append(self._and_expr())
        pred = _any(preds)
        scopes = [self._scopes.get(id(p)) for p in preds]
        if len(preds) > 1 and all(sc is not None for sc in scopes):
            # a or b: a file must be in a's folders or in b's
            self._set_scope(pred, frozenset().union(*(sc for sc in scopes if sc is not None)))
        return pred

    def _and_expr(self) -> Predicate:
        preds = [self._not_expr()]
        while self._is_kw(self._peek(), "and"):
            self._next()
            preds.append(self._not_expr())
        pred = _all(preds)
        scopes = [sc for sc in (self._scopes.get(id(p)) for p in preds) if sc is not None]
        if len(preds) > 1 and scopes:
            # a and b: either operand's folders will do; take the narrower
            self._set_scope(pred, min(scopes, key=len))
        return pred

    def _not_expr(self) -> Predicate:
        negate = False
        while self._is_kw(self._peek(), "not"):
            self._next()
            negate = not negate
        pred = self._primary()
        return _not(pred) if negate else pred

    def _primary(self) -> Predicate:
        tok = self._peek()
        if tok.kind == "(":
            self._next()
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise self._error(f"parentheses nested deeper than {_MAX_DEPTH}", tok)
            pred = self._or_expr()
            self.depth -= 1
            close = self._next()
            if close.kind != ")":
                raise self._error(
                    f"expected ')' to close '(' at position {tok.pos}, "
                    f"found {self._describe(close)}",
                    close,
                )
            return pred
        if tok.kind == "string":
            return self._membership()
        if tok.kind == "word" and tok.value.lower() not in _KEYWORDS:
            return self._field_term()
        raise self._error(f"expected a search term, found {self._describe(tok)}", tok)

    def _field_name(self) -> _Token:
        tok = self._next()
        name = tok.value
        if name in self.ALL_TERMS:
            return tok
        if name in self.UNSUPPORTED:
            raise self._error(self.UNSUPPORTED[name], tok)
        near = [t for t in self.ALL_TERMS if t.lower() == name.lower()]
        hint = f" (did you mean '{near[0]}'? terms are case-sensitive)" if near else ""
        raise self._error(f"unknown search term {name!r}{hint}", tok)

    def _membership(self) -> Predicate:
        value_tok = self._next()
        self._expect_kw("in", "after a string value (as in 'ID' in parents)")
        coll_tok = self._next()
        coll = coll_tok.value
        if coll_tok.kind != "word" or coll not in self.COLLECTIONS:
            if coll_tok.kind == "word" and coll in self.UNSUPPORTED:
                raise self._error(self.UNSUPPORTED[coll], coll_tok)
            raise self._error(
                f"'in' needs 'parents' or 'owners' on its right, found {self._describe(coll_tok)}",
                coll_tok,
            )
        value = value_tok.value
        alias_word = _COLLECTION_ALIASES[coll]
        if value == alias_word:
            if alias_word not in self.aliases:
                raise self._error(
                    f"'{alias_word}' in {coll} needs an alias the emulator was not given",
                    value_tok,
                )
            value = self.aliases[alias_word]
        if coll == "parents":
            target = value
            return self._set_scope(
                lambda f: any(isinstance(p, Mapping) and p.get("id") == target for p in f.get("parents") or ()),
                frozenset({target}),
            )
        email = value.lower()
        return lambda f: any(
            isinstance(o, Mapping) and str(o.get("emailAddress", "")).lower() == email
            for o in f.get("owners") or ()
        )

    def _field_term(self) -> Predicate:
        field_tok = self._field_name()
        name = field_tok.value
        if name in self.COLLECTIONS:
            raise self._error(f"'{name}' must be used as 'VALUE' in {name}", field_tok)
        if name == "properties":
            return self._properties_has()
        op_tok = self._next()
        if self._is_kw(op_tok, "contains"):
            if name not in self.CONTAINS_FIELDS:
                raise self._error(f"'contains' is not valid for '{name}'", op_tok)
            raw_needle = self._expect("string", f"after '{name} contains'").value
            getter = self.STRING_FIELDS[name]
            if name in self.PREFIX_FIELDS:
                return lambda f: words_match(raw_needle, str(getter(f) or ""))
            needle = raw_needle.casefold()
            return lambda f: needle in str(getter(f) or "").casefold()
        if op_tok.kind != "op":
            raise self._error(
                f"expected an operator after '{name}', found {self._describe(op_tok)}", op_tok
            )
        op = op_tok.value
        if name in self.BOOL_FIELDS:
            return self._bool_term(name, op_tok)
        if name in self.DATE_FIELDS:
            return self._date_term(name, op)
        if name in self.NUMBER_FIELDS:
            return self._number_term(name, op)
        # string fields
        if op not in ("=", "!="):
            raise self._error(f"operator '{op}' is not valid for '{name}'", op_tok)
        lit = self._expect("string", f"after '{name} {op}'").value
        getter = self.STRING_FIELDS[name]
        cmp = _COMPARE[op]
        return lambda f: cmp(getter(f), lit)

    def _number_term(self, name: str, op: str) -> Predicate:
        tok = self._expect("number", f"after '{name} {op}'")
        value = float(tok.value)
        cmp = _COMPARE[op]
        return lambda f: f.get(name) is not None and cmp(float(f[name]), value)

    def _bool_term(self, name: str, op_tok: _Token) -> Predicate:
        op = op_tok.value
        if op not in ("=", "!="):
            raise self._error(f"operator '{op}' is not valid for '{name}'", op_tok)
        val_tok = self._next()
        if not (self._is_kw(val_tok, "true") or self._is_kw(val_tok, "false")):
            raise self._error(
                f"'{name}' must be compared with true or false, found {self._describe(val_tok)}",
                val_tok,
            )
        wanted = val_tok.value.lower() == "true"
        getter = self.BOOL_FIELDS[name]
        if op == "=":
            return lambda f: getter(f) == wanted
        return lambda f: getter(f) != wanted

    def _date_term(self, name: str, op: str) -> Predicate:
        lit_tok = self._expect(
            "string", f"after '{name} {op}' (a date such as '2012-06-04T12:00:00')"
        )
        try:
            when = parse_rfc3339(lit_tok.value)
        except ValueError as exc:
            raise self._error(str(exc), lit_tok) from None
        cmp = _COMPARE[op]

        def pred(f: Mapping[str, Any]) -> bool:
            raw = f.get(name)
            if raw is None:
                return False
            return cmp(parse_rfc3339(raw), when)

        return pred

    def _properties_has(self) -> Predicate:
        self._expect_kw("has", "after 'properties'")
        self._expect("{", "after 'properties has'")
        conds: dict[str, str] = {}
        while True:
            key_tok = self._next()
            key = key_tok.value
            if key_tok.kind != "word" or key not in ("key", "value", "visibility"):
                raise self._error(
                    "expected key=, value= or visibility= inside 'properties has { }', "
                    f"found {self._describe(key_tok)}",
                    key_tok,
                )
            if key in conds:
                raise self._error(f"'{key}' given twice in 'properties has {{ }}'", key_tok)
            eq = self._next()
            if eq.kind != "op" or eq.value != "=":
                raise self._error(
                    f"expected '=' after '{key}' in 'properties has {{ }}', "
                    f"found {self._describe(eq)}",
                    eq,
                )
            val_tok = self._expect("string", f"after '{key} ='")
            if key == "visibility":
                vis = val_tok.value.upper()
                if vis not in ("PUBLIC", "PRIVATE"):
                    raise self._error(
                        f"visibility must be 'PUBLIC' or 'PRIVATE', not {val_tok.value!r}", val_tok
                    )
                conds[key] = vis
            else:
                conds[key] = val_tok.value
            sep = self._next()
            if sep.kind == "}":
                break
            if not self._is_kw(sep, "and"):
                raise self._error(
                    f"expected 'and' or '}}' in 'properties has {{ }}', found {self._describe(sep)}",
                    sep,
                )
        for required in ("key", "value"):
            if required not in conds:
                raise self._error(
                    f"'properties has {{ }}' needs {required}='...'", self.tokens[self.i - 1]
                )
        want_key, want_value = conds["key"], conds["value"]
        want_vis = conds.get("visibility")

        def pred(f: Mapping[str, Any]) -> bool:
            props: Sequence[Any] = f.get("properties") or ()
            for p in props:
                if not isinstance(p, Mapping):
                    continue
                if p.get("key") != want_key or p.get("value") != want_value:
                    continue
                if want_vis is not None and str(p.get("visibility", "PRIVATE")).upper() != want_vis:
                    continue
                return True
            return False

        return pred


def compile_query(q: str, *, aliases: Mapping[str, str] | None = None) -> Predicate:
    """Compile a Drive v2 ``q`` string into a predicate over file resources.

    Args:
        q: the query, e.g. ``"title = 'a.bin' and 'root' in parents"``. An empty
            or all-whitespace query matches every file.
        aliases: replacements for the special values ``'root'`` (in
            ``'root' in parents``) and ``'me'`` (in ``'me' in owners``).

    Returns:
        A function taking a Drive v2 file resource dict and returning ``True``
        when it matches. It reads ``title``, ``mimeType``, ``parents[].id``,
        ``owners[].emailAddress``, ``labels.{trashed,starred,hidden}``,
        ``sharedWithMe``, ``modifiedDate`` / ``createdDate`` /
        ``lastViewedByMeDate``, ``shortcutDetails.targetId`` and
        ``properties[]``.

    Raises:
        QueryError: for syntax errors, unterminated strings, unknown or
            unsupported terms, operators not valid for a term, and values of
            the wrong type, with the position of the offending token.
    """
    if not isinstance(q, str):
        raise TypeError(f"query must be a str, not {type(q).__name__}")
    return _Parser(q, aliases or {}).parse()


@dataclass(frozen=True)
class QueryPlan:
    """A compiled query and what it tells about where its matches can be.

    Attributes:
        predicate: as ``compile_query`` returns.
        parents: None, or folder ids such that every file ``predicate``
            accepts has at least one of them among its parents (the query
            requires ``'ID' in parents`` in every branch). A caller may then
            test only the children of these folders and get the same result.
    """

    predicate: Predicate
    parents: frozenset[str] | None


def plan_query(q: str, *, aliases: Mapping[str, str] | None = None) -> QueryPlan:
    """Like ``compile_query``, plus the folders the matches must be in.

    ``"'F' in parents and trashed = false"`` gives ``parents == {"F"}``;
    ``"'A' in parents or 'B' in parents"`` gives ``{"A", "B"}``; a query with a
    branch that does not require a parent (``"'A' in parents or starred = true"``)
    or that negates one (``"not 'A' in parents"``) gives None.

    Raises:
        QueryError: as ``compile_query``.
    """
    if not isinstance(q, str):
        raise TypeError(f"query must be a str, not {type(q).__name__}")
    parser = _Parser(q, aliases or {})
    predicate = parser.parse()
    return QueryPlan(predicate, parser.scope)


class _DriveParser(_Parser):
    """The ``drives.list`` ``q`` language (shared-drive terms)."""

    STRING_FIELDS = {"name": lambda d: d.get("name")}
    CONTAINS_FIELDS = frozenset({"name"})
    PREFIX_FIELDS = frozenset({"name"})
    DATE_FIELDS = ("createdTime", "createdDate")
    BOOL_FIELDS = {"hidden": lambda d: bool(d.get("hidden", False))}
    NUMBER_FIELDS = frozenset({"memberCount", "organizerCount"})
    COLLECTIONS = ()
    UNSUPPORTED = {
        "title": "shared drives are searched by 'name', not 'title'",
        "orgUnitId": "'orgUnitId' is not supported by the emulator",
    }
    ALL_TERMS = frozenset({"name", "hidden", "createdTime", "createdDate", "memberCount", "organizerCount"})

    def _date_term(self, name: str, op: str) -> Predicate:
        inner = super()._date_term("createdTime", op)
        return inner


def compile_drive_query(q: str) -> Predicate:
    """Compile a ``drives.list`` ``q`` string into a predicate over shared-drive views.

    The view is a dict with ``name``, ``hidden``, ``createdTime`` (RFC 3339),
    ``memberCount`` and ``organizerCount``.

    Raises:
        QueryError: as ``compile_query``.
    """
    if not isinstance(q, str):
        raise TypeError(f"query must be a str, not {type(q).__name__}")
    return _DriveParser(q, {}).parse()
