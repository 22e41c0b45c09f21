"""The vectorized intake (engines/intake.py) is sound: every row its SQL accepts, `validate` (the
checks and messages of `reasoner check`) accepts too, with the same facts laid out the same way.
Rows it does not accept go to `validate`, so the batch path gives check's verdicts on every row."""
from __future__ import annotations

import datetime
import itertools
import json

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reasoner.engines.intake import LINE, arrow_schema, intake_query, typed_columns, typed_intake_query
from reasoner.engines.sql import layout
from reasoner.errors import InputError
from reasoner.io.batch import _as_json, _json
from reasoner.io.patient import id_text, nested, validate
from reasoner.language.load import load
from reasoner.language.vocab import load_vocabulary
from reasoner.search.strategies import patients

from conftest import ROOT

LOADED = load(ROOT / "policies")
LAYOUT = layout(LOADED.program, LOADED.vocab)
QUERY = intake_query(LOADED.vocab, LAYOUT, "chunk")
CON = duckdb.connect()


def _stage(texts: list[str]) -> list[dict]:
    CON.register("chunk", pa.table({"line": pa.array(range(1, len(texts) + 1), pa.int64()), "j": pa.array(texts, pa.string())}))
    try:
        return CON.sql(QUERY).to_arrow_table().to_pylist()
    finally:
        CON.unregister("chunk")


def _verdict(text: str):
    """What the per-file path says of a row: its Patient, or None when refused."""
    data = _json(text)
    if isinstance(data, InputError):
        return None
    try:
        return validate(data, LOADED.vocab, "row")
    except InputError:
        return None


def _assert_sound(texts: list[str]) -> int:
    """Each accepted row is valid with the same layout row; returns how many were accepted."""
    accepted = 0
    for text, staged in zip(texts, _stage(texts)):
        if not staged["ok"]:
            continue
        accepted += 1
        patient = _verdict(text)
        assert patient is not None, f"SQL accepted a row validate refuses: {text}"
        expected = dict(zip((c.name for c in LAYOUT.columns), LAYOUT.row(patient.facts, LOADED.vocab)))
        got = {c.name: staged[c.name] for c in LAYOUT.columns}
        assert got == expected, text
        assert staged["id"] == id_text(_json(text).get("id")), text  # the id as validate reads it (a number's digits)
    return accepted


def _mutations(data: dict) -> st.SearchStrategy:
    """A patient mapping with one field changed to something a file might hold."""
    odd = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=False),
                    st.text(max_size=12), st.lists(st.text(max_size=6), max_size=3),
                    st.sampled_from(["M96.1", "G90.5ZZZ", "2024-02-30", "2024-01-01", "62350", "nonmalignant_pain",
                                     "failed", "\ud800", "1e400", " 40", "true"]),
                    st.dictionaries(st.text(max_size=8), st.integers(), max_size=2))
    keys = st.sampled_from(sorted(set(data) | set(LOADED.vocab.plain()) | {"medications", "id", "unknown"}))
    return st.tuples(keys, odd).map(lambda kv: {**data, kv[0]: kv[1]})


def _collect(strategy, n: int) -> list:
    """n examples of a strategy, the same on every run, staged together in one query (the intake
    query takes a moment to plan, so rows are checked a thousand at a time, not one by one)."""
    out = []

    @settings(max_examples=n, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(x):
        out.append(x)

    collect()
    return out


@pytest.mark.slow
def test_generated_patients_are_accepted_with_the_same_facts():
    batch = _collect(patients(LOADED), 600)
    texts = [json.dumps(nested(p.facts, LOADED.vocab) | {"id": p.id}, default=str) for p in batch]
    assert _assert_sound(texts) == len(texts)  # every valid generated patient takes the fast path


@pytest.mark.slow
def test_mutated_patients_are_never_accepted_when_validate_refuses_them():
    mutated = _collect(patients(LOADED).flatmap(lambda p: _mutations(nested(p.facts, LOADED.vocab))), 1500)
    texts = [json.dumps(r, default=str) for r in mutated]
    accepted = _assert_sound(texts)
    assert 0 < accepted < len(texts)  # both paths are exercised


@pytest.mark.parametrize("text", [
    '{"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial", "age": 40, "age": 41}',
    '{"service": "implant", "indications": ["nonmalignant_pain", "nonmalignant_pain"], "line_of_business": "commercial"}',
    '{"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial", "id": "\\ud800"}',
    '{"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial", "age": 40.5}',
    '{"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial", "age": true}',
    '{"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial", "age": "40"}',
    '{"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial", "diagnoses": ["G90.5ZZZZ"]}',
    '{"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial", "medications": {"baclofen": 5}}',
    '{"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial", "medications": {"x": {}}}',
    # object keys: unknown, given twice, or differing in case (counted against the allowed keys found)
    '{"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial", '
    '"medications": {"nsaid": {"outcome": "failed"}, "nsaid": {"outcome": "failed"}}}',
    '{"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial", '
    '"medications": {"nsaid": {"outcome": "failed", "outcome": "failed"}}}',
    '{"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial", '
    '"medications": {"nsaid": {"outcome": "failed", "bogus": null}}}',
    '{"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial", '
    '"medications": {"NSAID": {"outcome": "failed"}}}',
    '{"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial", "Age": 40}',
    '{"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial", "bogus": null}',
    '{"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial", "request_date": "2024-02-30"}',
    '{"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial", "request_date": 20240101}',
    '{"service": "implant", "indications": ["nonmalignant_pain"]}',
    '{"service": "implant", "indications": [], "line_of_business": "commercial"}',
    # a set of named values: an item given twice among others, an item that is no name, an item not text
    '{"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial", '
    '"pain_sites": ["back", "neck", "back"]}',
    '{"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial", "pain_sites": ["back", "Back"]}',
    '{"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial", "pain_sites": ["back", 1]}',
    # read typed, caught by the census of JSON types: a boolean given a number or a string, a
    # record or an entry given something other than an object, an unknown key whose value is empty
    *['{"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial", ' + more + '}'
      for more in ['"pain_disabling": 1', '"pain_disabling": "true"', '"pain_disabling": 0.0', '"pain_disabling": 1, "age": true',
                   '"substance_use_disorders": {"opioid": {"status": "active", "in_treatment": 0}}',
                   '"medications": "none"', '"medications": []', '"medications": 5', '"medications": {"nsaid": []}',
                   '"medications": {"nsaid": {"outcome": "failed"}, "baclofen": true}',
                   '"bogus": {}', '"bogus": []', '"bogus": ' + '[' * 5000 + ']' * 5000, '"age": null, "age": null',
                   '"pain_severity": 5', '"pain_severity": true', '"pain_severity": ["severe"]', '"description": 5', '"id": 7.0',
                   '"id": true', '"id": [7]']],
    # what DuckDB's reader takes and JSON does not: a comma before } or ] (found by trying to break the census)
    '{"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial",}',
    '{"service": "implant", "indications": ["nonmalignant_pain",], "line_of_business": "commercial"}',
    '{"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial", '
    '"medications": {"nsaid": {"outcome": "failed" ,\t} , } }',
    '{"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial", "request_date": "0000-01-01"}',
    '{}', ' {"service": "implant", "service": "implant"} ', '[1, 2]', 'null', '{"service": "implant"', '{"age": 1' + '0' * 5000 + '}', '[' * 5000 + ']' * 5000,
])
def test_rows_validate_refuses_are_not_accepted(text):
    assert _verdict(text) is None
    assert not _stage([text])[0]["ok"]


# pieces of rows that each make the census count something else: a boolean read from a number or a
# string, a record or entry given a non-object, a stray value, a null, a key given twice
ATTACKS = ['"pain_disabling": 1', '"pain_disabling": "true"', '"medications": true', '"medications": 5',
           '"medications": {"nsaid": true}', '"medications": {"nsaid": 5}', '"bogus": {}', '"bogus": true', '"bogus": 1',
           '"bogus": null', '"age": 40, "age": 41', '"pain_sites": ["back", null]', '"pain_sites": [{}]', '"pain_sites": [true]',
           '"pain_severity": {}', '"substance_use_disorders": true', '"age": null', '"medications": {"nsaid": null}',
           '"medications": {"nsaid": {"outcome": "failed", "outcome": "failed"}}', '"cancer_advanced": [true]',
           '"cancer_advanced": {}', '"cancer_advanced": null', '"id": {}', '"description": true',
           '"medications": {"nsaid": {"bogus": true}}', '"medications": {"nsaid": {"outcome": "failed"}, "bogus": {}}',
           '"medications": []', '"pain_sites": [[]]', '"pain_sites": [null, null]', '"compression_fracture_complex": 0']


def test_no_two_or_three_miscounts_cancel_out_in_the_census():
    """Every pair and triple of the attacks above in one row (4,495 rows): whatever the SQL accepts,
    validate accepts with the same facts (a helper session's attack, kept)."""
    base = '"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial"'
    texts = ['{' + ', '.join([base, *combo]) + '}' for k in (2, 3) for combo in itertools.combinations(ATTACKS, k)]
    assert 0 < _assert_sound(texts) < len(texts)


def test_records_with_nulls_and_empty_entries_are_read_as_validate_reads_them():
    """A record's keys are counted against what its transform found; nulls, empty entries and
    unknown keys make the counts differ, and the keys are then compared by name: such a record is
    accepted exactly when validate accepts it, with the same facts."""
    base = '"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial"'
    records = ['{"nsaid": {"outcome": "failed", "weeks": null}}', '{"nsaid": null, "baclofen": {"outcome": "failed"}}',
               '{"nsaid": {}}', '{}', '{"bogus": null}', '{"nsaid": {"outcome": "failed", "bogus": 1}}',
               '{"nsaid": "failed"}', '{"nsaid": [{"outcome": "failed"}]}', '{"nsaid": null, "nsaid": {"outcome": "failed"}}',
               '{"nsaid": {"outcome": "failed"}, "baclofen": {"outcome": "failed", "outcome": "worked"}}']
    texts = ['{' + base + ', "medications": ' + r + '}' for r in records]
    texts.append('{' + base + ', "substance_use_disorders": {"opioid": {"status": "active", "in_treatment": null}}}')
    staged = _stage(texts)
    assert [s["ok"] for s in staged] == [_verdict(t) is not None for t in texts] == [True] * 4 + [False] * 6 + [True]
    assert _assert_sound(texts) == 5


def _staged_with(vocab, table, texts: list[str]) -> tuple[list[dict], list]:
    """The intake query's rows for another vocabulary, and validate's verdict on each text."""
    CON.register("chunk", pa.table({"line": pa.array(range(1, len(texts) + 1), pa.int64()), "j": pa.array(texts)}))
    try:
        staged = CON.sql(intake_query(vocab, table, "chunk")).to_arrow_table().to_pylist()
    finally:
        CON.unregister("chunk")
    verdicts = []
    for text in texts:
        try:
            verdicts.append(validate(_json(text), vocab, "row"))
        except InputError:
            verdicts.append(None)
    for s, patient in zip(staged, verdicts):
        if s["ok"] and patient is not None:
            expected = dict(zip((c.name for c in table.columns), table.row(patient.facts, vocab)))
            assert {c.name: s[c.name] for c in table.columns} == expected
    return staged, verdicts


def _vocabulary_with(tmp_path, after: str, added: str):
    """The bundled vocabulary with `added` written after the line `after`, and its layout."""
    text = (ROOT / "policies" / "vocabulary.vocab").read_text(encoding="utf-8")
    assert after in text
    (tmp_path / "vocabulary.vocab").write_text(text.replace(after, after + added), encoding="utf-8")
    vocab = load_vocabulary(tmp_path / "vocabulary.vocab", [ROOT / "policies" / "drugs.vocab"])
    return vocab, layout(LOADED.program, vocab)


def test_a_record_field_that_is_a_set_is_refused_when_not_given_as_a_list(tmp_path):
    """A set in a record is found by the transform only as a list: given a string or a number, it
    is neither found nor null, and the record goes to validate (a vocabulary may give a record a
    set field; the bundled one does not)."""
    vocab, table = _vocabulary_with(tmp_path, '  weeks: number weeks [0 .. 1040] "length of the course"\n',
                                    '  sites: set of body_region_kind "where it was given"\n')
    base = '"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial"'
    texts = ['{' + base + ', "medications": {"nsaid": {"outcome": "failed", "sites": ' + sites + '}}}'
             for sites in ('"back"', "5", '{"back": true}', '["back"]', "null", "[]")]
    staged, verdicts = _staged_with(vocab, table, texts)
    assert [s["ok"] for s in staged] == [v is not None for v in verdicts] == [False] * 3 + [True] * 3


def test_a_named_value_spelled_like_a_json_literal_is_read_only_from_a_string(tmp_path):
    """A named value is read as text, which any JSON value has; only a string's text can be a name
    such as `mild`. A vocabulary may name a value `true` or `nan`, the text DuckDB writes for the
    literal true or NaN: such a domain's values are then read from their JSON text, quotes and all."""
    vocab, table = _vocabulary_with(tmp_path, '  mild      "mild"\n', '  true "a value named true"\n  nan "a value named nan"\n')
    base = '"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial"'
    texts = ['{' + base + ', "pain_severity": ' + v + '}' for v in ("true", "nan", "NaN", '"true"', '"nan"', '"mild"')]
    staged, verdicts = _staged_with(vocab, table, texts)
    assert [s["ok"] for s in staged] == [v is not None for v in verdicts] == [False] * 3 + [True] * 3
    # a set's items likewise (a set of body regions, where `true` and `nan` are regions here)
    vocab, table = _vocabulary_with(tmp_path, '  head        "the head, including headache and facial pain"\n',
                                    '  true "a region named true"\n  nan "a region named nan"\n')
    texts = ['{' + base + ', "pain_sites": ' + v + '}'
             for v in ("[true]", "[nan]", '["head", nan]', '["true"]', '["nan", "head"]', '["t\\u0072ue"]')]
    staged, verdicts = _staged_with(vocab, table, texts)
    assert [s["ok"] for s in staged] == [v is not None for v in verdicts] == [False] * 3 + [True] * 3


def test_keys_written_with_escapes_are_read_as_validate_reads_them():
    base = '"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial"'
    texts = ['{' + base + ', "\\u0061ge": 40}', '{' + base + ', "medications": {"ns\\u0061id": {"outcome": "failed"}}}',
             '{' + base + ', "medications": {"nsaid": {"\\u006futcome": "failed"}}}']
    _assert_sound(texts)


def test_whole_number_ids_are_read_as_their_digits_as_validate_reads_them():
    """Member ids are often numbers: a whole number is an id, its text its decimal digits, on the
    JSON path (one of up to 18 digits in SQL, a longer one by validate) and from a Parquet integer
    column (the typed path); a fraction or a boolean is not an id."""
    base = '"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial"'
    ids = ["7", "0", "-3", "123456789012345678", "1234567890123456789012"]
    texts = ['{"id": ' + i + ', ' + base + '}' for i in ids]
    assert _assert_sound(texts) == 4  # the 22-digit id is validate's to read
    assert validate(json.loads(texts[-1]), LOADED.vocab, "row").id == ids[-1]
    table = pa.table({"id": pa.array([7, 1001], pa.int64()), "service": ["implant"] * 2,
                      "indications": [["nonmalignant_pain"]] * 2, "line_of_business": ["commercial"] * 2,
                      LINE: pa.array([1, 2], pa.int64())})
    assert typed_columns(LOADED.vocab, table.drop_columns([LINE]).schema) is not None
    CON.register("chunk", table)
    try:
        staged = CON.sql(typed_intake_query(LOADED.vocab, LAYOUT, "chunk", table.schema)).to_arrow_table().to_pylist()
    finally:
        CON.unregister("chunk")
    assert [(r["ok"], r["id"]) for r in staged] == [(True, "7"), (True, "1001")]


def test_codes_map_by_the_longest_prefix_as_validate_does():
    base = {"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial"}
    texts = [json.dumps(dict(base, diagnoses=[code])) for code in ("M96.1", "G89.4", "C50.911", "Z99.9", "G90.51")]
    texts.append(json.dumps(dict(base, medications={"baclofen": None, "nsaid": {"outcome": "failed", "weeks": None}})))
    assert _assert_sound(texts) == len(texts)


# ---------------------------------------------------------------- typed columns (Parquet)
SCHEMA = arrow_schema(LOADED.vocab)


def _typed(rows: list[dict], schema: pa.Schema = SCHEMA) -> tuple[list[dict], list[dict], list[str]]:
    """The rows as a typed table: what the typed query says of each, and what the JSON query says
    of the same row written as JSON by DuckDB (the text the fallback would be given)."""
    table = pa.Table.from_pylist(rows, schema=schema)
    texts = _as_json(table).to_pylist()
    table = table.append_column(LINE, pa.array(range(1, len(rows) + 1), pa.int64()))
    query = typed_intake_query(LOADED.vocab, LAYOUT, "chunk", table.schema)
    assert query is not None
    CON.register("chunk", table)
    try:
        typed = CON.sql(query).to_arrow_table().to_pylist()
    finally:
        CON.unregister("chunk")
    return typed, _stage(texts), texts


def _typed_row(data: dict) -> dict:
    """A nested patient as Python values of the schema's types (dates as dates)."""
    out = dict(data)
    for name, value in data.items():
        if LOADED.vocab.concepts.get(name) is not None and LOADED.vocab.concepts[name].kind == "date":
            out[name] = datetime.date.fromisoformat(value)
    return out


def _assert_typed_sound(rows: list[dict]) -> int:
    """Every row the typed query accepts, the JSON query accepts with the same facts, and so does
    validate; returns how many it accepted."""
    typed, by_json, texts = _typed(rows)
    for t, j, text in zip(typed, by_json, texts):
        if t["ok"]:
            assert j["ok"] and t == j, text
    _assert_sound([text for t, text in zip(typed, texts) if t["ok"]])
    return sum(t["ok"] for t in typed)


ODD = {"whole": [-1, 0, 10 ** 6, 2 ** 62, None], "number": [-1.0, 0.5, 3.0, 1e300, float("nan"), float("inf"), None],
       "boolean": [None, True], "date": [datetime.date(1, 1, 1), datetime.date(9999, 12, 31), None],
       "enum": ["", "unknown", "M96.1", "G90.5ZZZ", " trial", None],
       "set": [[], ["x"], [None], ["other", "other"], None], "codes": [[], ["6235"], ["62350", "62350"], ["E0783"], [None]]}


def _typed_mutations(data: dict) -> st.SearchStrategy:
    plain = LOADED.vocab.plain()
    keys = st.sampled_from(sorted(plain))
    def change(key):
        c = plain[key]
        values = ODD["whole" if c.kind == "number" and c.whole else c.kind]
        return st.sampled_from(values).map(lambda v: {**data, key: v})
    return keys.flatmap(change)


@pytest.mark.slow
def test_typed_parquet_rows_read_as_their_json():
    batch = _collect(patients(LOADED), 300)
    rows = [_typed_row(nested(p.facts, LOADED.vocab)) | {"id": p.id} for p in batch]
    assert _assert_typed_sound(rows) == len(rows)  # every valid generated patient takes the typed path
    mutated = _collect(patients(LOADED).flatmap(lambda p: _typed_mutations(_typed_row(nested(p.facts, LOADED.vocab)))), 800)
    assert 0 < _assert_typed_sound(mutated) < len(mutated)


def test_typed_rows_that_validate_refuses_are_not_accepted():
    base = {"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial"}
    rows = [dict(base, age=200), dict(base, age=-1), dict(base, ashworth_score=float("nan")), dict(base, service="pump"),
            dict(base, indications=[]), dict(base, line_of_business=None), dict(base, diagnoses=["G90.5ZZZZ"]),
            dict(base, procedure_codes=["6235"]), dict(base, pain_sites=["back", "back"]), dict(base, pain_sites=[None]),
            dict(base, pain_sites=["back", "neck", "back"]), dict(base, pain_sites=["back", None]), dict(base, pain_sites=["bak"]),
            dict(base, medications={"baclofen": {"outcome": "gone", "weeks": 3.0}})]
    typed, by_json, texts = _typed(rows)
    assert not any(t["ok"] for t in typed)
    assert all(_verdict(text) is None for text in texts)
    assert _typed([dict(base, age=40, medications={"baclofen": {"outcome": "failed"}})])[0][0]["ok"]


@pytest.mark.parametrize("day", [pa.array([3_000_000], pa.int32()).cast(pa.date32()), pa.array(["0000-01-01"]),
                                 pa.array(["0000-02-29"])], ids=["beyond 9999", "year 0 as text", "year 0 leap day"])
def test_dates_outside_years_1_to_9999_go_to_validate(day):
    """Python's dates run from year 1 to 9999; DuckDB's go further, and read the year 0000 as 1 BC."""
    table = pa.table({"service": ["implant"], "indications": [["nonmalignant_pain"]], "line_of_business": ["commercial"],
                      "request_date": day, LINE: pa.array([1], pa.int64())})
    CON.register("chunk", table)
    try:
        assert CON.sql(typed_intake_query(LOADED.vocab, LAYOUT, "chunk", table.schema)).fetchall()[0][1] is False
    finally:
        CON.unregister("chunk")


@pytest.mark.parametrize("field", [
    pa.field("Age", pa.int64()),  # DuckDB would bind it to age: names are compared exactly
    pa.field("age", pa.float32()),  # a float's JSON text is another double
    pa.field("age", pa.decimal128(5, 1)),
    pa.field("age", pa.string()),
    pa.field("unknown", pa.bool_()),
    pa.field(LINE, pa.int64()),  # the name typed chunks give their row numbers
    pa.field("id", pa.float64()),
    pa.field("pain_sites", pa.string()),
    pa.field("medications", pa.struct([pa.field("aspirinx", pa.struct([pa.field("outcome", pa.string())]))])),
    pa.field("medications", pa.struct([pa.field("aspirin", pa.struct([pa.field("dose", pa.string())]))])),
])
def test_files_with_other_columns_take_the_json_path(field):
    schema = pa.schema([pa.field("service", pa.string()), field])
    assert typed_columns(LOADED.vocab, schema) is None


def test_the_documented_schema_takes_the_typed_path():
    assert typed_columns(LOADED.vocab, SCHEMA) is not None
    assert typed_columns(LOADED.vocab, pa.schema([pa.field("age", pa.null()), pa.field("request_date", pa.string())])) is not None
