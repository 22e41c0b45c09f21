"""Patient rows checked and laid out set-at-a-time: the vocabulary's checks compiled to SQL.

`reasoner batch` reads populations of millions; checking each row in Python (pydantic) costs far
more than deciding it. This module compiles the vocabulary into one SQL query over a table of rows
written as JSON text (`line`, `j`): per row, whether it is certainly valid (`ok`), its id, and its
facts laid out as the fast backend's wide table (`engines/sql.py`), codes mapped to domain values
by the longest declared prefix exactly as `io/patient.py:domain_value` does.

The contract is one-sided on purpose: a row the SQL accepts is a row `reasoner.io.patient.validate`
accepts, with the same facts (tests/test_intake.py holds this on generated and mutated rows). A row
the SQL does not accept is handed to `validate`, which gives the verdict and the messages; so there
is one source of messages (the one `reasoner check` uses), and an unusual but valid spelling (a key
given flat as `medications.baclofen.outcome`, a surrogate pair) is still decided, only more slowly.

A file whose rows are already typed (Parquet) need not go through JSON at all: when each of its
columns is a vocabulary field of a type that reads exactly as that field's JSON would,
`typed_intake_query` checks the columns themselves, with the same checks and the same layout. The
contract is then relative to the JSON path: a row it accepts, the JSON intake accepts too, written
as DuckDB writes that row as JSON (the text the fallback is given), with the same facts.

Every literal in the query comes from the checked vocabulary and IR (names, values, bounds, code
prefixes); a column is named in SQL only by its vocabulary name, after the file's own column names
were compared with those names as data; row content travels only as data.
"""
from __future__ import annotations

import datetime as dt
import json
import re

import pyarrow as pa

from reasoner.engines.sql import DOCUMENTED, Layout, literal
from reasoner.language.vocab import CODE_SYSTEMS, CPT_HCPCS, Concept, Vocabulary

REQUEST = ("service", "indications", "line_of_business")


def _pattern(regex: re.Pattern) -> str:
    """A Python code pattern as an RE2 full-match pattern (anchors dropped: regexp_full_match
    anchors at both ends, and stricter than Python's `$`, which also matches before a newline)."""
    return literal(regex.pattern.removeprefix("^").removesuffix("$"))


def _date_text(x: str) -> str:
    """A text value as a date, when it is written YYYY-MM-DD and is a day of the calendar (year 1
    or later: DuckDB reads the year 0000 as 1 BC, which Python's dates do not have)."""
    return (f"CASE WHEN regexp_full_match({x}, '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}') AND NOT starts_with({x}, '0000') "
            f"THEN TRY_CAST({x} AS DATE) END")


def _requested(vocab: Vocabulary, names: dict[str, str]) -> list[str]:
    """The request is stated: service, indications (at least one) and line of business, as read."""
    return [f"{names[n]} IS NOT NULL" + (f" AND len({names[n]}) > 0" if vocab.concepts[n].kind in ("set", "codes") else "")
            for n in REQUEST if n in vocab.concepts]


SQL_TYPES = {"boolean": "BOOLEAN", "number": "DOUBLE", "date": "VARCHAR", "enum": "VARCHAR", "set": ["VARCHAR"],
             "codes": ["VARCHAR"]}


class _Concepts:
    """Per concept: whether its value as read is certainly what validate accepts (`check`), and
    the layout columns it fills (`values`); values are read from a JSON row's transform by
    `_read`, from a typed Parquet column by `_typed_normal`."""

    def __init__(self, vocab: Vocabulary):
        self.vocab = vocab

    def coded(self, c: Concept) -> bool:
        """Whether the concept's values may be written as codes of a system (mapped by prefix)."""
        return CODE_SYSTEMS.get(self.vocab.systems.get(c.domain, "")) is not None and bool(self.vocab.codes[c.domain])

    def mapped(self, c: Concept, s: str) -> str:
        """A text value as its domain value, or NULL (io/patient.py:domain_value in SQL)."""
        names = self.vocab.domains[c.domain]
        named = f"WHEN {s} IN ({', '.join(map(literal, names))}) THEN {s}"
        pattern = CODE_SYSTEMS.get(self.vocab.systems.get(c.domain, ""))
        if pattern is None or not self.vocab.codes[c.domain]:
            return f"CASE {named} END"
        prefixes = sorted(self.vocab.codes[c.domain].items(), key=lambda kv: -len(kv[0]))
        by_prefix = " ".join(f"WHEN starts_with({s}, {literal(p)}) THEN {literal(v)}" for p, v in prefixes)
        fallback = literal("other") if "other" in names else "NULL"
        return (f"CASE {named} WHEN regexp_full_match({s}, {_pattern(pattern)}) THEN "
                f"(CASE {by_prefix} ELSE {fallback} END) END")

    def named(self, c: Concept, x: str) -> str:
        """A set's items (the list `x`) as domain values: a set of codes mapped item by item (NULL
        for an item that names no value); a set of named values as it is, since `check` accepts
        it only when every item is one of the names (mapping each item cost a quarter of the
        typed intake query, and the names are what it would have mapped them to)."""
        if not self.coded(c):
            return x
        return f"list_transform({x}, lambda e: {self.mapped(c, 'e')})"

    def check(self, c: Concept, x: str, n: str) -> str:
        """True when the value read (`n`; `x` as transformed) is certainly what validate accepts."""
        kind = c.kind
        if kind == "number":
            whole = f" AND {n} = floor({n})" if c.whole else ""
            return f"({n} IS NOT NULL AND isfinite({n}) AND {n} BETWEEN {literal(c.low)} AND {literal(c.high)}{whole})"
        if kind in ("boolean", "date", "enum"):
            return f"({n} IS NOT NULL)"
        readable = f"list_count({n}) = len({n})"
        distinct = f"len(list_distinct({x})) = len({x})"  # as written: two codes of one value are fine
        if kind == "codes":
            readable += f" AND list_bool_and(list_transform({n}, lambda e: regexp_full_match(e, {_pattern(CPT_HCPCS)})))"
        elif not self.coded(c):  # items as they are (`named`): each one of the names, none twice
            names = self.vocab.domains[c.domain]
            readable += f" AND list_bool_and(list_transform({n}, lambda e: e IN ({', '.join(map(literal, names))})))"
            # items that are names are distinct when as many names are in the list as it has items
            # (list_distinct, a hash table per row, cost as much as everything else a set needs)
            distinct = "(" + " + ".join(f"list_contains({n}, {literal(m)})::INTEGER" for m in names) + f") = len({n})"
        return f"({n} IS NOT NULL AND (len({n}) = 0 OR COALESCE({readable} AND {distinct}, FALSE)))"

    def values(self, c: Concept, n: str, members: list[str | None]) -> list[str]:
        """SQL for each layout column of the concept (a set has one per member, None: documented)."""
        if c.kind == "date":
            return [f"CAST(date_diff('day', DATE '0001-01-01', {n}) + 1 AS DOUBLE)"]
        if c.kind in ("boolean", "number", "enum"):
            return [n]
        return [f"COALESCE(len({n}) > 0, FALSE)" if m is DOCUMENTED else f"COALESCE(list_contains({n}, {literal(m)}), FALSE)"
                for m in members]


def _path(*parts: str) -> str:
    return "$." + ".".join(f'"{p}"' for p in parts) if parts else "$"


ID_NUMBER = "0|-?[1-9][0-9]{0,17}"  # a whole-number id whose JSON text is its decimal digits (longer ones go to validate)
LITERALS = {"true", "false", "null", "nan", "inf", "infinity"}  # spellings DuckDB's JSON reads as non-strings


def _plain_name(name: str) -> bool:
    """Whether a name could not be the text DuckDB writes for a JSON value that is not a string
    (a number, true, false, null, NaN, Infinity, an array or an object)."""
    return re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) is not None and name.lower() not in LITERALS


def _leaf(concepts: _Concepts, c: Concept) -> str | list[str]:
    """How the row's transform reads a field. Where the type it is read as says what the JSON
    was, it is read as that type: a set as a list of text (NULL when it is not a list), a date or
    a named value as text (only a string's text can be a date or a name). A boolean is read as
    BOOLEAN, which a number or a string "true" also gives: the row's census of JSON types
    (`intake_query`) finds those. Any other value (a number, a code, the id and description, a
    named value or a set's items where a name could be the text of a number or a literal such as
    `nan`) as its JSON text, whose first character says its JSON type."""
    plain = c.kind in ("set", "enum") and all(map(_plain_name, concepts.vocab.domains[c.domain]))
    if c.kind in ("set", "codes"):
        return ["VARCHAR" if plain or c.kind == "codes" else "JSON"]
    if c.kind == "boolean":
        return "BOOLEAN"
    if c.kind == "date" or (c.kind == "enum" and not concepts.coded(c) and plain):
        return "VARCHAR"
    return "JSON"


ARROW_LEAF = {"BOOLEAN": pa.bool_(), "VARCHAR": pa.string()}


def _read(concepts: _Concepts, c: Concept, leaf: str | list[str], x: str, n: str) -> tuple[str, str | None]:
    """A field's value (SQL) and whether it is certainly what validate accepts (SQL over `n`, the
    value's column; None when it always is), from the transform's leaf `x`, read as `leaf`
    (`_leaf`): a typed leaf is read as a typed column is, JSON text by `_raw_normal`."""
    if leaf == "JSON":
        text = f"CAST({x} AS VARCHAR)"
        unquoted = _unquoted(text) if c.kind == "enum" and concepts.coded(c) else "NULL"
        return _raw_normal(concepts, c, text, unquoted), f"({text} IS NULL OR {concepts.check(c, text, n)})"
    if leaf == ["JSON"]:  # items as their JSON text: only a string names a value
        items = f"list_transform({x}, lambda e: {_unquoted('CAST(e AS VARCHAR)')})"
        return concepts.named(c, items), f"({x} IS NULL OR {concepts.check(c, items, n)})"
    t = ARROW_LEAF.get(leaf) if isinstance(leaf, str) else pa.list_(pa.string())
    return _typed_normal(concepts, c, x, t), _typed_checked(concepts, c, x, n)


def _unquoted(x: str) -> str:
    """A JSON text (as the transform writes it back) that is a string, as that string; NULL for
    any other JSON type. Escapes are rare: only a text holding one is parsed again."""
    return (f"CASE WHEN starts_with({x}, '\"') THEN "
            f"(CASE WHEN contains({x}, '\\') THEN json_extract_string({x}, '$') ELSE {x}[2:-2] END) END")


def _raw_normal(concepts: _Concepts, c: Concept, x: str, u: str) -> str:
    """A field's value read from its JSON text `x` (`u`: the text unquoted, for an enum of codes),
    NULL where the JSON type is wrong: TRY_CAST reads only a JSON number as a number, since a
    string's text keeps its quotes. A named value is matched on its text as the transform writes
    it back (escapes resolved), quotes included."""
    kind = c.kind
    if kind == "number":
        return f"TRY_CAST({x} AS DOUBLE)"
    if kind == "enum" and not concepts.coded(c):
        quoted = ", ".join(literal(json.dumps(n)) for n in concepts.vocab.domains[c.domain])
        return f"CASE WHEN {x} IN ({quoted}) THEN {x}[2:-2] END"
    if kind == "enum":
        return concepts.mapped(c, u)
    raise ValueError(f"a {kind} is not read from its JSON text")  # `_leaf` reads it typed


def _names_ok(keys: str, allowed: str) -> str:
    """An object's keys (the list `keys`) are allowed ones (the list `allowed`), none given twice."""
    return f"(list_has_all({allowed}, {keys}) AND len(list_distinct({keys})) = len({keys}))"


class _Row:
    """The parts of the JSON intake query that follow the row's shape: how each concept is read
    (`_leaf`), the transform's spec, each leaf's SQL path, and the objects whose keys are named
    (the row, each record, each entry)."""

    def __init__(self, concepts: _Concepts):
        vocab = concepts.vocab
        self.read_as = {n: _leaf(concepts, c) for n, c in vocab.concepts.items()}
        self.spec: dict = {n: self.read_as[n] for n in vocab.plain()}
        self.leaves = {n: f's."{n}"' for n in vocab.plain()}  # concept -> its leaf
        self.objects = {_path(): list(vocab.plain()) + list(vocab.records) + ["id", "description"]}
        self.records: list[str] = []  # the records' and entries' structs (each an object when found)
        for name, record in vocab.records.items():
            keys = list(vocab.domains[record.key_domain])
            self.spec[name] = {key: {f: self.read_as[record.concept(key, f)] for f in record.fields} for key in keys}
            self.records.append(f's."{name}"')
            self.objects[_path(name)] = keys
            for key in keys:
                self.records.append(f's."{name}"."{key}"')
                self.objects[_path(name, key)] = list(record.fields)
                self.leaves.update({record.concept(key, f): f's."{name}"."{key}"."{f}"' for f in record.fields})
        self.spec.update(id="JSON", description="JSON")
        self.leaves.update(id='s."id"', description='s."description"')


def _laid_out(concepts: _Concepts, layout: Layout, names: dict[str, str], as_of: dt.date | None = None) -> list[str]:
    """The layout's columns from each concept's value as read (`names`). They mean something only
    for a row that is ok: the batch keeps no other row, so they are not masked per row (masking
    every column with CASE WHEN ok cost a fifteenth of the typed intake query). With `as_of`, a
    request with no date is dated then (`batch --as-of`: as `check --as-of` does, an ok row's
    date is absent or valid, so only an absent one is filled)."""
    members: dict[str, list] = {}
    for col in layout.columns:
        members.setdefault(col.concept, []).append((col.name, col.member))
    read = dict(names)
    if as_of is not None and "request_date" in read:
        read["request_date"] = f"COALESCE({names['request_date']}, DATE {literal(as_of.isoformat())})"
    out = []
    for concept, cols in members.items():
        sql = concepts.values(concepts.vocab.concepts[concept], read[concept], [m for _, m in cols])
        out += [f"{s} AS {name}" for s, (name, _) in zip(sql, cols)]
    return out


def _count(xs: list[str]) -> str:
    return " + ".join(f"({x} IS NOT NULL)::INTEGER" for x in xs) or "0"


OBJECTS, NULLS = 1 << 20, 1 << 40  # the census packs three counts in one number: booleans, objects, nulls


def _census(row: _Row, leaf: dict[str, str]) -> tuple[str, str]:
    """The SELECT items that count what the transform found and the row's JSON types (`t`), and
    the condition that they add up (`intake_query` says why it suffices). The booleans and the
    objects found are counted once, for both sums; the types in one pass, as one number
    (booleans, objects and nulls, 2^20 apart: `OBJECTS`, `NULLS`)."""
    booleans = [leaf[n] for n, k in row.read_as.items() if k == "BOOLEAN"]
    sets = [leaf[n] for n, k in row.read_as.items() if isinstance(k, list)]
    others = [x for x in leaf.values() if x not in booleans and x not in sets]
    types = (f"COALESCE(list_sum(list_transform(t, lambda e: CASE e WHEN 'BOOLEAN' THEN 1 WHEN 'OBJECT' THEN {OBJECTS} "
             f"WHEN 'NULL' THEN {NULLS} ELSE 0 END)), 0)")  # the sum of no types is NULL
    counts = (f"{_count(booleans)} AS true_count, {_count(row.records)} AS objects, "
              f"{' + '.join([_count(others)] + [f'COALESCE(len({x}) + 1, 0)' for x in sets])} AS other_found, "
              f"{types} AS census")
    paths = "[" + ", ".join(map(literal, row.objects)) + "]"
    allowed = "[" + ", ".join("[" + ", ".join(map(literal, keys)) + "]" for keys in row.objects.values()) + "]"
    by_name = (f"list_bool_and(list_transform(list_zip(json_keys(j, {paths}), {allowed}), "
               f"lambda p: p[1] IS NULL OR {_names_ok('p[1]', 'p[2]')}))")
    shape = (f"len(t) < {OBJECTS} AND len(t) = true_count + objects + other_found + nulls "
             f"AND census = true_count + {OBJECTS} * objects + {NULLS} * nulls "
             f"AND CASE WHEN nulls = 0 THEN TRUE WHEN nulls > 0 THEN {by_name} END")
    return counts, shape


def intake_query(vocab: Vocabulary, layout: Layout, source: str, as_of: dt.date | None = None) -> str:
    """SELECT line, ok, id and the layout's columns from `source` (columns `line`, `j`); `as_of`
    dates the requests that have no date.

    A row is parsed twice: one json_transform reads every field (`_leaf`), records included, and
    one json_type over `$..*` gives the JSON type of every value in the row, at any depth. The
    census checks what the transform cannot see. Every value is a field found (a set's items
    counted), or null; so no key is unknown or given twice (a second value of a key is not found),
    and no value is of a type the transform could not read. As many values are JSON booleans as
    boolean fields were found, so each of these is a boolean, not a number or a string read as
    one (no other field accepts a boolean). As many are objects as records and entries were found,
    so each of these is an object (a struct is found for any value). A row with a null is also
    checked for keys by name (json_keys, for those rows only: a null is not found, so a key given
    twice, once null, would count as one). Malformed JSON makes the transform NULL (TRY), and such
    a row goes to validate."""
    concepts = _Concepts(vocab)
    row = _Row(concepts)
    names = {name: f"f{i}" for i, name in enumerate(vocab.concepts)}
    leaf = {n: f"x{i}" for i, n in enumerate(row.leaves)}
    text = {n: f"CAST({leaf[n]} AS VARCHAR)" for n in ("id", "description")}
    normal, checks = {}, []
    for n, c in vocab.concepts.items():
        normal[n], check = _read(concepts, c, row.read_as[n], leaf[n], names[n])
        checks += [check] if check else []
    whole = f"regexp_full_match({text['id']}, {literal(ID_NUMBER)})"  # an id may be a whole number (validate's id_text)
    checks += [f"({text['id']} IS NULL OR id_text IS NOT NULL)",  # a string or such a number: read as its text
               f"({text['description']} IS NULL OR starts_with({text['description']}, '\"'))"]
    counts, shape = _census(row, leaf)
    ok = " AND ".join([shape, *_requested(vocab, names), *checks])
    columns = _laid_out(concepts, layout, names, as_of)
    # a surrogate escape (\ud800) is valid JSON but not valid text, and a comma before } or ] is
    # read by DuckDB but is not JSON: validate() explains both (the second also catches such text
    # inside a string, a rare row that is then only read more slowly)
    surrogate = "regexp_matches(j, '\\\\[uU][dD][89abAB]')"
    trailing = "regexp_matches(j, ',[ \\t\\n\\r]*[}\\]]')"
    is_object = "regexp_matches(j, '^[ \\t\\n\\r]*\\{')"
    reads = [f"{path} AS {leaf[n]}" for n, path in row.leaves.items()]
    return (f"WITH parsed AS (SELECT line, j, CASE WHEN {is_object} AND NOT {surrogate} AND NOT {trailing} "
            f"THEN TRY(json_transform(j, {literal(json.dumps(row.spec))})) END AS s FROM {source}), "
            f"leaves AS (SELECT line, j, s, CASE WHEN s IS NOT NULL THEN json_type(j, '$..*') END AS t, "
            f"{', '.join(reads)} FROM parsed), "
            f"counted AS (SELECT *, {counts} FROM leaves), "
            f"nulls AS (SELECT *, census // {NULLS} AS nulls FROM counted), "
            f"normal AS (SELECT *, CASE WHEN {whole} THEN {text['id']} ELSE {_unquoted(text['id'])} END AS id_text, "
            f"{', '.join(f'{normal[n]} AS {names[n]}' for n in vocab.concepts)} FROM nulls), "
            f"checked AS (SELECT *, COALESCE(s IS NOT NULL AND {ok}, FALSE) AS ok FROM normal) "
            f"SELECT line, ok, id_text AS id, {', '.join(columns)} FROM checked")


# ---------------------------------------------------------------- typed columns (Parquet)
LINE = "_line"  # the row-number column added to a typed chunk (a file with a column so named goes the JSON way)


def _text_type(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _reads_exactly(c: Concept, t: pa.DataType) -> bool:
    """Whether a column of Arrow type `t` holds values of `c`'s kind that read as their JSON would:
    integers and doubles (not floats or decimals, whose JSON text is a different double), booleans,
    text, dates, lists of text. A column of nulls documents nothing, whatever the kind."""
    if pa.types.is_null(t):
        return True
    if c.kind == "boolean":
        return pa.types.is_boolean(t)
    if c.kind == "number":
        return pa.types.is_integer(t) or pa.types.is_float64(t)
    if c.kind == "date":
        return pa.types.is_date32(t) or _text_type(t)
    if c.kind == "enum":
        return _text_type(t)
    return (pa.types.is_list(t) or pa.types.is_large_list(t)) and _text_type(t.value_type)


def _sql_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def typed_columns(vocab: Vocabulary, schema: pa.Schema) -> dict[str, tuple[str, pa.DataType]] | None:
    """Field name (a concept, or `id` / `description`) -> (its SQL expression over the file's
    columns, its Arrow type), when every column of the file is a vocabulary field read exactly;
    None otherwise (the file then goes the JSON way, where unknown or mistyped fields are found
    and explained per row). Names are compared exactly: DuckDB's are not case-sensitive."""
    plain, out = vocab.plain(), {}
    if len(set(schema.names)) != len(schema.names):
        return None
    for f in schema:
        if f.name in ("id", "description"):
            whole = f.name == "id" and pa.types.is_integer(f.type)  # a member id column of numbers
            if not (_text_type(f.type) or pa.types.is_null(f.type) or whole):
                return None
            out[f.name] = (f"CAST({_sql_name(f.name)} AS VARCHAR)" if whole else _sql_name(f.name), f.type)
        elif f.name in plain:
            if not _reads_exactly(plain[f.name], f.type):
                return None
            out[f.name] = (_sql_name(f.name), f.type)
        elif f.name in vocab.records:
            entries = _record_columns(vocab, vocab.records[f.name], f)
            if entries is None:
                return None
            out.update(entries)
        else:
            return None
    return out


def _record_columns(vocab: Vocabulary, record, f: pa.Field) -> dict | None:
    """A record column (a struct of entries, each a struct of fields) as its fields' columns."""
    if pa.types.is_null(f.type):
        return {}
    if not pa.types.is_struct(f.type):
        return None
    keys, out = vocab.domains[record.key_domain], {}
    for entry in f.type:
        if entry.name not in keys or not (pa.types.is_struct(entry.type) or pa.types.is_null(entry.type)):
            return None
        for leaf in (entry.type if pa.types.is_struct(entry.type) else []):
            name = record.concept(entry.name, leaf.name) if leaf.name in record.fields else None
            if name is None or not _reads_exactly(vocab.concepts[name], leaf.type):
                return None
            path = f"struct_extract(struct_extract({_sql_name(f.name)}, {literal(entry.name)}), {literal(leaf.name)})"
            out[name] = (path, leaf.type)
    return out


def _null(c: Concept) -> str:
    kind = SQL_TYPES[c.kind]
    return f"NULL::{kind[0]}[]" if isinstance(kind, list) else ("NULL::DATE" if c.kind == "date" else f"NULL::{kind}")


def _arrow_type(c: Concept) -> pa.DataType:
    if c.kind == "number":
        return pa.int64() if c.whole else pa.float64()
    return {"boolean": pa.bool_(), "date": pa.date32(), "enum": pa.string()}.get(c.kind, pa.list_(pa.string()))


def arrow_schema(vocab: Vocabulary) -> pa.Schema:
    """The Parquet schema whose files take the typed path: one column per concept (a record as a
    struct of entries), named and typed as the vocabulary says (the README's batch section)."""
    fields = [pa.field("id", pa.string())] + [pa.field(n, _arrow_type(c)) for n, c in vocab.plain().items()]
    for name, record in vocab.records.items():
        entries = [pa.field(key, pa.struct([pa.field(f, _arrow_type(vocab.concepts[record.concept(key, f)]))
                                            for f in record.fields]))
                   for key in vocab.domains[record.key_domain]]
        fields.append(pa.field(name, pa.struct(entries)))
    return pa.schema(fields)


def _typed_normal(concepts: _Concepts, c: Concept, x: str, t: pa.DataType) -> str:
    """The value of a typed column as the JSON path would read it (`_Concepts.normal`)."""
    if pa.types.is_null(t):
        return _null(c)
    if c.kind == "number":
        return f"CAST({x} AS DOUBLE)"
    if c.kind == "date" and pa.types.is_date32(t):  # DuckDB writes only years 1-9999 as YYYY-MM-DD
        return f"CASE WHEN year({x}) BETWEEN 1 AND 9999 THEN {x} END"
    if c.kind == "date":
        return _date_text(x)
    if c.kind == "enum" and concepts.coded(c):
        return concepts.mapped(c, x)
    if c.kind == "set":
        return concepts.named(c, x)
    return x  # a named value as it is: `_typed_check` asks that it be one of the names


def _typed_check(concepts: _Concepts, c: Concept, x: str, n: str) -> str:
    """`_Concepts.check` of a typed column's value (`n`, read by `_typed_normal`): a named value
    is read as it is and must be one of the names (mapping it with CASE, then asking that the
    mapping be found, cost a fifteenth more of the typed query)."""
    if c.kind == "enum" and not concepts.coded(c):
        return f"({n} IN ({', '.join(map(literal, concepts.vocab.domains[c.domain]))}))"
    return concepts.check(c, x, n)


def _typed_checked(concepts: _Concepts, c: Concept, x: str, n: str) -> str | None:
    """The check of a typed value `x` (read as `n`), None for a boolean: read as a boolean, it is
    its own value, so `x IS NULL OR n IS NOT NULL` holds for every row (44 such terms were a
    tenth of the checks)."""
    return None if c.kind == "boolean" else f"({x} IS NULL OR {_typed_check(concepts, c, x, n)})"


def typed_intake_query(vocab: Vocabulary, layout: Layout, source: str, schema: pa.Schema,
                       as_of: dt.date | None = None) -> str | None:
    """SELECT line, ok, id and the layout's columns from `source` (the file's columns and LINE),
    or None when the schema is not one read exactly (`typed_columns`)."""
    columns = typed_columns(vocab, pa.schema([f for f in schema if f.name != LINE]))
    if columns is None:
        return None
    concepts = _Concepts(vocab)
    names = {name: f"f{i}" for i, name in enumerate(vocab.concepts)}
    raw = {name: f"x{i}" for i, name in enumerate(vocab.concepts)}
    given = [n for n in vocab.concepts if n in columns]
    select = [f"{_sql_name(LINE)} AS line"] + [f"{columns[n][0]} AS {raw[n]}" for n in given]
    select.append(f"{columns['id'][0]} AS id" if "id" in columns else "NULL::VARCHAR AS id")
    normal = [f"{_typed_normal(concepts, vocab.concepts[n], raw[n], columns[n][1])} AS {names[n]}" for n in given]
    normal += [f"{_null(vocab.concepts[n])} AS {names[n]}" for n in vocab.concepts if n not in columns]
    checks = [_typed_checked(concepts, vocab.concepts[n], raw[n], names[n]) for n in given]
    ok = " AND ".join(_requested(vocab, names) + [c for c in checks if c]) or "TRUE"
    out = _laid_out(concepts, layout, names, as_of)
    return (f"WITH raw AS (SELECT {', '.join(select)} FROM {source}), "
            f"normal AS (SELECT *, {', '.join(normal)} FROM raw), "
            f"checked AS (SELECT *, COALESCE({ok}, FALSE) AS ok FROM normal) "
            f"SELECT line, ok, id, {', '.join(out)} FROM checked")
