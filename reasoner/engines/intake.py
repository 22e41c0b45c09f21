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
    """A text value as a date, when it is written YYYY-MM-DD and is a day of the calendar."""
    return f"CASE WHEN regexp_full_match({x}, '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}') THEN TRY_CAST({x} AS DATE) END"


def _requested(vocab: Vocabulary, names: dict[str, str]) -> list[str]:
    """The request is stated: service, indications (at least one) and line of business, as read."""
    return [f"{names[n]} IS NOT NULL" + (f" AND len({names[n]}) > 0" if vocab.concepts[n].kind in ("set", "codes") else "")
            for n in REQUEST if n in vocab.concepts]


SQL_TYPES = {"boolean": "BOOLEAN", "number": "DOUBLE", "date": "VARCHAR", "enum": "VARCHAR", "set": ["VARCHAR"],
             "codes": ["VARCHAR"]}


class _Concepts:
    """Per concept: whether its value as read is certainly what validate accepts (`check`), and
    the layout columns it fills (`values`); values are read from their JSON text by
    `_raw_normal` (a row's fields and a record's), from a typed Parquet column by `_typed_normal`."""

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
    return "$." + ".".join(f'"{p}"' for p in parts)


def _raw_leaf(c: Concept) -> str | list[str]:
    """How the row's transform reads a field: a set as a list of text (NULL when it is not a list),
    any other value as its JSON text, whose first character says its JSON type."""
    return ["VARCHAR"] if c.kind in ("set", "codes") else "JSON"


def _leaf_text(c: Concept, x: str) -> str:
    """A field as the transform read it (`_raw_leaf`), as `_raw_normal` reads it: a set's list as
    it is, any other value's JSON text as text (compared as JSON, the text would be parsed)."""
    return x if c.kind in ("set", "codes") else f"CAST({x} AS VARCHAR)"


def _row_spec(vocab: Vocabulary) -> str:
    """The json_transform structure of a row: its fields as `_raw_leaf` reads them, and each
    record as its JSON text (read by `_record_checks`)."""
    spec: dict = {name: _raw_leaf(c) for name, c in vocab.plain().items()}
    spec.update({name: "JSON" for name in vocab.records}, id="JSON", description="JSON")
    return json.dumps(spec)


def _unquoted(x: str) -> str:
    """A JSON text (as the transform writes it back) that is a string, as that string; NULL for
    any other JSON type. Escapes are rare: only a text holding one is parsed again."""
    return (f"CASE WHEN starts_with({x}, '\"') THEN "
            f"(CASE WHEN contains({x}, '\\') THEN json_extract_string({x}, '$') ELSE {x}[2:-2] END) END")


def _raw_normal(concepts: _Concepts, c: Concept, x: str, u: str) -> str:
    """A field's value read from its JSON text `x` (a list, for sets; `u`: the text unquoted, for
    an enum of codes), NULL where the JSON type is wrong: TRY_CAST reads only a JSON number as a
    number, since a string's text keeps its quotes. A date or a named value is matched on its
    text as the transform writes it back (escapes resolved), quotes included, so most strings
    are never unquoted."""
    kind = c.kind
    if kind == "boolean":
        return f"CASE {x} WHEN 'true' THEN TRUE WHEN 'false' THEN FALSE END"
    if kind == "number":
        return f"TRY_CAST({x} AS DOUBLE)"
    if kind == "date":
        return (f"CASE WHEN regexp_full_match({x}, '\"[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}\"') "
                f"THEN TRY_CAST({x}[2:-2] AS DATE) END")
    if kind == "enum" and not concepts.coded(c):
        quoted = ", ".join(literal(json.dumps(n)) for n in concepts.vocab.domains[c.domain])
        return f"CASE WHEN {x} IN ({quoted}) THEN {x}[2:-2] END"
    if kind == "enum":
        return concepts.mapped(c, u)
    if kind == "set":  # an item that is not text reads as text no value is named by
        return concepts.named(c, x)
    return x  # codes: unquoted numbers read as their digits


def _names_ok(keys: str, allowed: list[str]) -> str:
    """An object's keys (the list `keys`) are allowed ones, none given twice."""
    return f"(list_has_all([{', '.join(map(literal, allowed))}], {keys}) AND len(list_distinct({keys})) = len({keys}))"


def _record_checks(concepts: _Concepts, vocab: Vocabulary, name: str, names: dict, normal: dict, checks: list) -> str:
    """A record read from its own JSON text (`r_<name>`, small beside the row) as the row is read:
    one json_transform gives every entry's fields as JSON text (read by `_raw_normal`), one
    json_type the JSON types of its entries (`$.*`, each an object or null) and one those of
    their fields (`$.*.*`). Keys are counted against the entries and fields the transform found,
    as the row's are: the counts add up only when no key is unknown, given twice or null. When
    they do not, the keys are compared by name (json_keys), for those records only, and every
    field must then be found or null (a set given other than as a list is neither). Fills
    `normal` (concept -> SQL of its value) and `checks`; returns the SELECT items that read the
    text. (Reading the types of every entry's and field's path, and their keys, cost two fifths
    of checking a JSON row.)"""
    record, r = vocab.records[name], f"r_{name}"
    keys, fields = list(vocab.domains[record.key_domain]), list(record.fields)
    spec = {key: {f: _raw_leaf(vocab.concepts[record.concept(key, f)]) for f in fields} for key in keys}
    leaf = {(key, f): f'{r}_s."{key}"."{f}"' for key in keys for f in fields}
    for (key, f), read in leaf.items():
        n = record.concept(key, f)
        c = vocab.concepts[n]
        x = _leaf_text(c, read)
        unquoted = _unquoted(x) if c.kind == "enum" and concepts.coded(c) else "NULL"
        normal[n] = _raw_normal(concepts, c, x, unquoted)
        checks.append(f"({x} IS NULL OR {concepts.check(c, x, names[n])})")
    entries = " + ".join(f'({r}_s."{key}" IS NOT NULL)::INTEGER' for key in keys)
    found = " + ".join(f"({x} IS NOT NULL)::INTEGER" for x in leaf.values())
    entry_keys = f"json_keys({r}, [{', '.join(literal(_path(key)) for key in keys)}])"
    null_fields = f"len(list_filter({r}_f, lambda t: t = 'NULL'))"
    # CASE, not OR: a projection evaluates both sides of an OR for every row, json_keys included.
    # When the fields do not add up, each must be found or null (a set given a string is neither)
    # and the names must be allowed ones, none twice.
    checks.append(
        f"({r} IS NULL OR (starts_with({r}, '{{') "
        f"AND len(list_filter({r}_e, lambda t: t NOT IN ('OBJECT', 'NULL'))) = 0 "
        f"AND CASE WHEN len({r}_e) = {entries} THEN TRUE ELSE {_names_ok(f'json_keys({r})', keys)} END "
        f"AND CASE WHEN len({r}_f) = {found} THEN TRUE ELSE len({r}_f) = {found} + {null_fields} "
        f"AND list_bool_and(list_transform({entry_keys}, lambda ks: ks IS NULL OR {_names_ok('ks', fields)})) END))")
    return (f"CASE WHEN {r} IS NOT NULL THEN json_transform({r}, {literal(json.dumps(spec))}) END AS {r}_s, "
            f"CASE WHEN {r} IS NOT NULL THEN json_type({r}, '$.*') END AS {r}_e, "
            f"CASE WHEN {r} IS NOT NULL THEN json_type({r}, '$.*.*') END AS {r}_f")


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


def intake_query(vocab: Vocabulary, layout: Layout, source: str, as_of: dt.date | None = None) -> str:
    """SELECT line, ok, id and the layout's columns from `source` (columns `line`, `j`); `as_of`
    dates the requests that have no date.

    A row is parsed twice in the usual case: one json_transform reads every field as its JSON
    text (a set as a list), one json_type over `$.*` gives the JSON types of its keys. A key is
    allowed when it is a field the transform found (a set that is not a list is not found) or a
    field whose value is null; counting them against the keys finds unknown keys and keys given
    twice (each allowed key found is one of the row's keys, so the counts agree only when there is
    no other key and none twice), and a row with a null is also checked for duplicates by name. A
    record is read from its own text (`_record_checks`). Malformed JSON makes the transform NULL
    (TRY), and such a row goes to validate."""
    concepts = _Concepts(vocab)
    plain = vocab.plain()
    names = {name: f"f{i}" for i, name in enumerate(vocab.concepts)}
    top = list(plain) + list(vocab.records) + ["id", "description"]
    field = {n: _leaf_text(c, f's."{n}"') for n, c in plain.items()}
    field.update({n: f's."{n}"' for n in vocab.records})  # a record's JSON text, read by `_record_checks`
    field.update({n: f'CAST(s."{n}" AS VARCHAR)' for n in ("id", "description")})
    unquoted = {n: f"u{i}" for i, n in enumerate(top) if n == "id" or (
        n in plain and plain[n].kind == "enum" and concepts.coded(plain[n]))}
    normal = {n: _raw_normal(concepts, c, field[n], unquoted.get(n, "NULL")) for n, c in plain.items()}
    checks = [f"({field[n]} IS NULL OR {concepts.check(c, field[n], names[n])})" for n, c in plain.items()]
    checks += [f"({field[n]} IS NULL OR starts_with({field[n]}, '\"'))" for n in ("id", "description")]
    record_reads = [_record_checks(concepts, vocab, name, names, normal, checks) for name in vocab.records]
    found = " + ".join(f"({field[n]} IS NOT NULL)::INTEGER" for n in top)
    nulls = "list_where(k, list_transform(kt, lambda e: e = 'NULL'))"
    allowed = "[" + ", ".join(map(literal, top)) + "]"
    keys_ok = (f"(len(kt) = {found} + len(nk) AND CASE WHEN len(nk) = 0 THEN TRUE ELSE "  # CASE: an OR evaluates both sides
               f"(list_has_all({allowed}, nk) AND len(list_distinct(k)) = len(k)) END)")
    ok = " AND ".join([keys_ok, *_requested(vocab, names), *checks])
    columns = _laid_out(concepts, layout, names, as_of)
    # a surrogate escape (\ud800) is valid JSON but not valid text: validate() explains it
    surrogate = "regexp_matches(j, '\\\\[uU][dD][89abAB]')"
    is_object = "regexp_matches(j, '^[ \\t\\n\\r]*\\{')"
    reads = [f"{_unquoted(field[n])} AS {u}" for n, u in unquoted.items()]
    reads += [f"{field[n]} AS r_{n}" for n in vocab.records]
    return (f"WITH parsed AS (SELECT line, j, CASE WHEN {is_object} AND NOT {surrogate} "
            f"THEN TRY(json_transform(j, {literal(_row_spec(vocab))})) END AS s FROM {source}), "
            f"typed AS (SELECT line, j, s, CASE WHEN s IS NOT NULL THEN json_type(j, '$.*') END AS kt, "
            f"{', '.join(reads)} FROM parsed), "
            f"keyed AS (SELECT *, CASE WHEN list_contains(kt, 'NULL') THEN json_keys(j) END AS k FROM typed), "
            f"nulls AS (SELECT *, COALESCE({nulls}, []::VARCHAR[]) AS nk FROM keyed), "
            f"records AS (SELECT *, {', '.join(record_reads) or 'NULL AS none'} FROM nulls), "
            f"normal AS (SELECT *, {', '.join(f'{normal[n]} AS {names[n]}' for n in vocab.concepts)} FROM records), "
            f"checked AS (SELECT *, COALESCE(s_ok AND {ok}, FALSE) AS ok FROM (SELECT *, s IS NOT NULL AS s_ok FROM normal)) "
            f"SELECT line, ok, {unquoted['id']} AS id, {', '.join(columns)} FROM checked")


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
            if not (_text_type(f.type) or pa.types.is_null(f.type)):
                return None
            out[f.name] = (_sql_name(f.name), f.type)
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
    checks = [f"({raw[n]} IS NULL OR {_typed_check(concepts, vocab.concepts[n], raw[n], names[n])})" for n in given]
    ok = " AND ".join(_requested(vocab, names) + checks) or "TRUE"
    out = _laid_out(concepts, layout, names, as_of)
    return (f"WITH raw AS (SELECT {', '.join(select)} FROM {source}), "
            f"normal AS (SELECT *, {', '.join(normal)} FROM raw), "
            f"checked AS (SELECT *, COALESCE({ok}, FALSE) AS ok FROM normal) "
            f"SELECT line, ok, id, {', '.join(out)} FROM checked")
