"""Text to syntax tree. Loads the grammar once; turns Lark's errors into ours.

Each method of `_Build` builds one syntax node for the grammar alias of the same name.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, VisitError

from reasoner.language import syntax as s
from reasoner.errors import PolicyError, Problem
from reasoner.paths import grammar_file


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(
        grammar_file().read_text(encoding="utf-8"),
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=False,
    )


def _text(token: Token) -> str:
    """A STRING token without its quotes."""
    return str(token)[1:-1]


class _Located(ValueError):
    """A value the grammar accepts but that means nothing (e.g. 2025-02-30), with its token."""

    def __init__(self, message: str, token: Token):
        super().__init__(message)
        self.token = token


@v_args(meta=True, inline=True)
class _Build(Transformer):
    """One method per grammar alias; each returns one syntax node."""

    def __init__(self, file: str):
        super().__init__()
        self.file = file

    def _span(self, meta) -> s.Span:
        return s.Span(self.file, getattr(meta, "line", 0), getattr(meta, "column", 0))

    def _tspan(self, token: Token) -> s.Span:
        return s.Span(self.file, token.line, token.column)

    # -------------------------------------------------------------- shared bits
    def start(self, meta, node):
        return node

    def name_list(self, meta, *names):
        return tuple(str(n) for n in names)

    def value_list(self, meta, *values):
        return tuple(_text(v) if v.type == "STRING" else str(v) for v in values)

    def number(self, meta, token):
        return Decimal(str(token))

    def unit(self, meta, token):
        return str(token)

    def cite(self, meta, text):
        return s.Cite(_text(text), self._span(meta))

    # -------------------------------------------------------------- vocabulary
    def vocabulary(self, meta, name, title, *items):
        topic, placed = "", []
        for item in items:  # a topic heading applies to the concepts and records after it
            if isinstance(item, tuple) and item[0] == "topic":
                topic = item[1]
            elif isinstance(item, (s.ConceptDecl, s.Record)):
                placed.append(replace(item, topic=topic))
            else:
                placed.append(item)
        pick = lambda cls: tuple(i for i in placed if isinstance(i, cls))  # noqa: E731
        return s.VocabularyFile(str(name), _text(title), pick(s.Domain), pick(s.ConceptDecl), self._span(meta),
                                pick(s.Record), pick(s.Subset), pick(s.Table))

    def topic(self, meta, title):
        return ("topic", _text(title))

    def domain(self, meta, name, meaning, *rest):
        system = _text(rest[0]) if rest and isinstance(rest[0], Token) else None
        values = tuple(v for v in rest if isinstance(v, s.DomainValue))
        return s.Domain(str(name), _text(meaning), values, self._span(meta), system)

    def code_system(self, meta, system):
        return system

    def subset(self, meta, name, domain, meaning, values):
        return s.Subset(str(name), str(domain), _text(meaning), values, self._span(meta))

    def record(self, meta, name, key_domain, meaning, *fields):
        return s.Record(str(name), str(key_domain), _text(meaning), fields, self._span(meta))

    def field(self, meta, name, kind, meaning):
        return s.ConceptDecl(str(name), kind, _text(meaning), self._span(meta))

    def table(self, meta, name, meaning, *rest):
        columns = tuple(c for c in rest if isinstance(c, tuple))
        source = next(_text(t) for t in rest if isinstance(t, Token))
        rows = tuple(r for r in rest if isinstance(r, s.TableRow))
        return s.Table(str(name), _text(meaning), columns, source, rows, self._span(meta))

    def column(self, meta, name, domain):
        return (str(name), str(domain))

    def table_row(self, meta, *parts):
        return s.TableRow(tuple(str(p) for p in parts[:-1]), parts[-1], self._span(meta))

    def domain_value(self, meta, name, meaning, codes=()):
        return s.DomainValue(str(name), _text(meaning), codes, self._span(meta))

    def code_list(self, meta, *codes):
        return tuple(_text(c) for c in codes)

    def concept(self, meta, name, kind, meaning):
        return s.ConceptDecl(str(name), kind, _text(meaning), self._span(meta))

    def boolean_kind(self, meta):
        return s.Kind("boolean")

    def number_kind(self, meta, unit, low, high, whole=None):
        return s.Kind("number", unit=unit, low=low, high=high, whole=whole is not None)

    def enum_kind(self, meta, domain):
        return s.Kind("enum", domain=str(domain))

    def set_kind(self, meta, domain):
        return s.Kind("set", domain=str(domain))

    def codes_kind(self, meta, system):
        return s.Kind("codes", system=_text(system))

    def date_kind(self, meta):
        return s.Kind("date")

    # -------------------------------------------------------------- policy
    def policy(self, meta, header, *items):
        pick = lambda cls: tuple(i for i in items if isinstance(i, cls))  # noqa: E731
        order = tuple(i.name for i in items if isinstance(i, (s.RuleDecl, s.Inherit)))
        return s.PolicyFile(header, pick(s.CodeSet), pick(s.Define), pick(s.RuleDecl), self._span(meta),
                            pick(s.Inherit), pick(s.Remove), order)

    def header(self, meta, name, *rest):
        parent = str(rest[0]) if rest and isinstance(rest[0], Token) else None
        fields = rest[1:] if parent else rest
        return s.Header(str(name), fields, self._span(meta), parent)

    def inherit(self, meta, name, cite):
        return s.Inherit(str(name), cite, self._span(meta))

    def remove(self, meta, name, cite=None):
        return s.Remove(str(name), cite, self._span(meta))

    def payer(self, meta, text):
        return s.HeaderField("payer", (_text(text),), None, self._span(meta))

    def document(self, meta, doc_id, title):
        return s.HeaderField("document", (_text(doc_id), _text(title)), None, self._span(meta))

    def version(self, meta, text):
        return s.HeaderField("version", (_text(text),), None, self._span(meta))

    def lines(self, meta, names, *rest):
        cite = next((r for r in rest if isinstance(r, s.Cite)), None)
        assumed = any(isinstance(r, Token) and r.type == "ASSUMED" for r in rest)
        return s.HeaderField("lines", names, cite, self._span(meta), assumed)

    def effective(self, meta, *parts):
        """effective START [.. END] ["what applies outside the period"] [cite]: values are the dates
        as text (checked by the checker) and the detail ("" when not given)."""
        dates = tuple(str(p) for p in parts if isinstance(p, Token) and p.type == "ISODATE")
        detail = next((_text(p) for p in parts if isinstance(p, Token) and p.type == "STRING"), "")
        cite = next((p for p in parts if isinstance(p, s.Cite)), None)
        return s.HeaderField("effective", dates + (detail,), cite, self._span(meta))

    def superseded_by(self, meta, name):
        return s.HeaderField("superseded_by", (str(name),), None, self._span(meta))

    def line_list(self, meta, names):
        return () if isinstance(names, Token) else names

    def codeset(self, meta, name, label, *rest):
        cite = rest[0] if rest and isinstance(rest[0], s.Cite) else None
        codes = tuple(_text(c) for c in rest if isinstance(c, Token))
        return s.CodeSet(str(name), _text(label), cite, codes, self._span(meta))

    def define(self, meta, name, label, *rest):
        cite, expr = (rest[0], rest[1]) if len(rest) == 2 else (None, rest[0])
        return s.Define(str(name), _text(label), cite, expr, self._span(meta))

    def rule(self, meta, name, label, *rest):
        cite = rest[0] if rest and isinstance(rest[0], s.Cite) else None
        fields = rest[1:] if cite else rest
        of = lambda tag: tuple(f[1] for f in fields if f[0] == tag)  # noqa: E731
        return s.RuleDecl(
            str(name), _text(label), cite,
            of("scope"), of("when"), of("unless"), of("decide"), self._span(meta),
        )

    def scope(self, meta, dimension, values):
        return ("scope", s.Scope(str(dimension), values, self._span(meta)))

    def when(self, meta, expr):
        return ("when", expr)

    def unless(self, meta, expr):
        return ("unless", expr)

    def decide(self, meta, decision):
        return ("decide", decision)

    def decision(self, meta, kind, *rest):
        subkind = next((str(t) for t in rest if isinstance(t, Token) and t.type == "NAME"), None)
        detail = next((_text(t) for t in rest if isinstance(t, Token) and t.type == "STRING"), None)
        pa = next((t for t in rest if isinstance(t, str) and not isinstance(t, Token)), None)
        return s.Decision(str(kind), subkind, detail, pa, self._span(meta))

    def prior_auth(self, meta, value):
        return str(value)

    # -------------------------------------------------------------- criteria
    def item(self, meta, expr, *rest):
        label = next((_text(t) for t in rest if isinstance(t, Token)), None)
        cite = next((c.section for c in rest if isinstance(c, s.Cite)), None)
        return s.Item(expr, label, cite, self._span(meta))

    def all_of(self, meta, *items):
        return s.Block("all", items, len(items), self._span(meta))

    def any_of(self, meta, *items):
        return s.Block("any", items, 1, self._span(meta))

    def at_least(self, meta, n, *items):
        return s.Block("at_least", items, int(n), self._span(meta))

    def not_(self, meta, expr):
        return s.Not(expr, self._span(meta))

    def name_ref(self, meta, name):
        return s.NameRef(str(name), self._span(meta))

    def compare(self, meta, name, op, value, unit=None):
        return s.Compare(str(name), str(op), value, unit, self._span(meta))

    def member(self, meta, name, values):
        return s.Member(str(name), values, self._span(meta))

    def compare_date(self, meta, name, op, value):
        try:
            day = dt.date.fromisoformat(str(value))
        except ValueError:
            raise _Located(f"{value} is not a date", value) from None
        return s.CompareDate(str(name), str(op), day, self._span(meta))

    def is_false(self, meta, name):
        return s.IsFalse(str(name), self._span(meta))

    def in_named(self, meta, name, named):
        return s.InNamed(str(name), str(named), self._span(meta))

    def same(self, meta, left, op, right):
        return s.Same(str(left), str(op), str(right), self._span(meta))

    def keys(self, meta, keys):
        return keys if isinstance(keys, tuple) else str(keys)

    def at_least_records(self, meta, n, record, keys, where):
        return s.RecordCount(int(n), str(record), keys, where, self._span(meta))

    def every_record(self, meta, record, keys, where):
        return s.RecordCount(None, str(record), keys, where, self._span(meta))

    def every_listed(self, meta, concept, table, *bindings):
        return s.EveryListed(str(concept), str(table), bindings, self._span(meta))

    def binding(self, meta, column, concept):
        return (str(column), str(concept))

    def has_all(self, meta, name, values):
        return s.HasAll(str(name), values, self._span(meta))

    def count(self, meta, name, values, op, n):
        return s.Count(str(name), values, str(op), int(n), self._span(meta))

    def documented(self, meta, name):
        return s.Documented(str(name), self._span(meta))


_TOKEN_NAMES = {
    "LBRACE": "'{'", "RBRACE": "'}'", "COLON": "':'", "STRING": "a quoted string",
    "NAME": "a name", "CMP": "a comparison (>=, >, ==, <, <=)", "INT": "a whole number",
    "SIGNED_NUMBER": "a number", "KIND": "a decision (covered, denied, review, not_addressed)",
    "PA": "'required' or 'not_required'", "EQUAL": "'='", "COMMA": "','",
    "LSQB": "'['", "RSQB": "']'", "LPAR": "'('", "RPAR": "')'", "$END": "the end of the file",
    "DOTTED": "a dotted name", "ISODATE": "a date (YYYY-MM-DD)",
}


def _describe_expected(expected) -> str:
    names = sorted({_TOKEN_NAMES.get(e, repr(e.strip('"').lower()) if e.isupper() else e) for e in expected})
    if len(names) > 6:
        names = names[:6] + ["or another"]
    return ", ".join(names)


def _syntax_problem(err: UnexpectedInput, text: str, file: str) -> Problem:
    where = f"{file}:{err.line}:{err.column}"
    context = err.get_context(text).rstrip("\n").replace("\n", "\n    ")
    token = getattr(err, "token", None)
    if isinstance(err, UnexpectedCharacters):
        what = f"unexpected character {text[err.pos_in_stream]!r}"
    elif isinstance(err, UnexpectedEOF) or (token is not None and token.type == "$END"):
        lines = text.rstrip().split("\n")
        what, where = "the file ends too early", f"{file}:{len(lines)}:{len(lines[-1]) + 1}"
        context = f"{lines[-1]}\n    {' ' * len(lines[-1])}^"
    else:
        what = f"unexpected {token.value}" if token.type == "STRING" else f"unexpected '{token.value}'"
    expected = getattr(err, "expected", None) or getattr(err, "allowed", None) or ()
    hint = f"; expected {_describe_expected(expected)}" if expected else ""
    return Problem(where, f"syntax error: {what}{hint}.\n    {context}")


MAX_DEPTH = 120  # syntax-tree levels (about two per level of criteria): deeper files are refused


def _too_deep(tree, file: str) -> Problem | None:
    """The first place where criteria nest more than MAX_DEPTH levels, found without recursion
    (building the syntax tree recurses, so this must be checked first)."""
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            meta = getattr(node, "meta", None)
            where = f"{file}:{getattr(meta, 'line', 1)}:{getattr(meta, 'column', 1)}"
            return Problem(where, f"criteria are nested too deeply (more than about {MAX_DEPTH // 2} levels); "
                                  "use named criteria (define) to structure them.")
        stack.extend((child, depth + 1) for child in getattr(node, "children", ()) if hasattr(child, "children"))
    return None


def parse_text(text: str, file: str = "<text>"):
    """Parse policy or vocabulary text; raises PolicyError with line and column."""
    try:
        tree = _parser().parse(text)
        deep = _too_deep(tree, file)
        if deep:
            raise PolicyError([deep])
        return _Build(file).transform(tree)
    except UnexpectedInput as err:
        raise PolicyError([_syntax_problem(err, text, file)]) from None
    except VisitError as err:  # a builder rejected a value, e.g. a date that does not exist
        token = getattr(err.orig_exc, "token", None)
        where = f"{file}:{token.line}:{token.column}" if token is not None else file
        raise PolicyError([Problem(where, f"cannot read the file: {err.orig_exc}.")]) from None


MAX_BYTES = 20_000_000


def parse_file(path: Path):
    """Parse one file; unreadable files are reported like syntax errors. Only regular files are
    read (a FIFO would block forever, /dev/zero never ends), and only up to MAX_BYTES."""
    path = Path(path)
    try:
        if not path.is_file():
            what = "does not exist" if not path.exists() else "is not a regular file (a folder, device or pipe)"
            raise PolicyError([Problem(str(path), f"cannot read the file: it {what}.")])
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise PolicyError([Problem(str(path), f"the file is larger than {MAX_BYTES // 1_000_000} MB.")])
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise PolicyError([Problem(str(path), f"cannot read the file: {getattr(err, 'strerror', None) or err}.")]) from None
    return parse_text(text, str(path))
