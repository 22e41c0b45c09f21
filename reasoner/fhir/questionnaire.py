"""A payer's questions for one request, as a FHIR R4 Questionnaire (in the manner of Da Vinci DTR).

The questions are generated from the IR, never kept by hand: exactly the concepts read by the
payer's rules whose scope admits the request's service and indication (conditions, exceptions and
the implicit line-of-business rule), less those the request's indication makes moot (a rule it
keeps from firing, a branch it decides), in the vocabulary's order and grouped by its topics. The
service and indication themselves are the request, fixed (the URL names them), so they are not
asked; the line of business is always asked, since every request states it. Anything not
asked cannot change that payer's decision on that request: `tests/test_questionnaire.py` checks
this on generated patients by deleting every unasked fact.

Each concept's kind gives the item's type: boolean; decimal or integer with the vocabulary's range
(minValue / maxValue) and unit (questionnaire-unit, UCUM where one exists); choice with the
domain's values as answer options (repeating for a set); date; and, for code lists, repeating
strings naming the code system. Answer codes use one system per vocabulary domain,
`urn:reasoner:<vocabulary>:<domain>`, so a QuestionnaireResponse maps back without a lookup table.
"""
from __future__ import annotations

from reasoner.language import ir
from reasoner.language.vocab import Concept, Vocabulary

REQUEST = ("service", "indications")  # fixed by the request the questionnaire is for (in its URL)
ALWAYS = ("line_of_business",)  # every request states it (as every patient file must), read or not
URL = "urn:reasoner:questionnaire:{payer}:{service}:{indication}"
EXT = "http://hl7.org/fhir/StructureDefinition/"
UCUM = "http://unitsofmeasure.org"
UCUM_CODES = {"%": "%", "hours": "h", "days": "d", "weeks": "wk", "months": "mo", "years": "a", "ms": "ms",
              "points": "{score}", "visits": "{visits}", "visits_per_week": "{visits}/wk", "agents": "{agents}"}


def applies(rule: ir.Rule, service: str, indication: str | None) -> bool:
    """Whether the rule's scope admits the request (an unscoped dimension admits everything)."""
    services, indications = rule.scope_values("service"), rule.scope_values("indications")
    return (services is None or service in services) and (
        indications is None or indication is None or indication in indications)


def facts_read(policy: ir.Policy, vocab: Vocabulary, service: str, indication: str | None) -> list[str]:
    """The concepts the policy's rules for this request can read, in the vocabulary's order: not
    those of a rule the request's indication already keeps from firing, nor those under a test it
    already decides (a spasticity request is not asked the pain branch's facts)."""
    read: set[str] = set()
    decided = _Decided(indication)
    for rule in policy.rules:
        if applies(rule, service, indication) and not _barred(rule, decided):
            for top in ir.rule_nodes(rule):
                read.update(_live(top, decided))
    read.update(c for c in ALWAYS if c in vocab.concepts)
    fixed = REQUEST if indication else ("service",)  # for any indication, the form asks which
    if not indication and "indications" in vocab.concepts:
        read.add("indications")
    return [name for name in vocab.concepts if name in read and name not in fixed]


class _Decided:
    """Each node's value when the request fixes the indications to [indication], or None when
    other facts still matter (always None for a questionnaire of any indication). Worked out once
    per node: `_live` asks at every depth, which recomputed each subtree once per ancestor."""

    def __init__(self, indication: str | None):
        self.indication = indication
        self.known: dict[int, tuple[ir.Node, bool | None]] = {}  # by id, the node kept so its id stays its own

    def __call__(self, node: ir.Node) -> bool | None:
        if id(node) not in self.known:
            self.known[id(node)] = (node, self._value(node))
        return self.known[id(node)][1]

    def _value(self, node: ir.Node) -> bool | None:
        test, indication = node.test, self.indication
        if isinstance(test, ir.LEAVES):
            if indication is None or test.concept != "indications":
                return None
            have = {indication}
            if isinstance(test, ir.OneOf):
                return bool(have & set(test.values))
            if isinstance(test, ir.HasAll):
                return set(test.values) <= have
            if isinstance(test, ir.CountAtLeast):
                return len(have & set(test.values)) >= test.n
            return True if isinstance(test, ir.Documented) else None
        if isinstance(test, ir.Not):
            value = self(test.child)
            return None if value is None else not value
        values = [self(kid) for kid in ir.children(node)]
        need = len(values) if isinstance(test, ir.All) else 1 if isinstance(test, ir.Any) else test.n
        if values.count(True) >= need:
            return True
        if len(values) - values.count(False) < need:
            return False
        return None


def _barred(rule: ir.Rule, decided: _Decided) -> bool:
    """Whether the request's indication alone keeps the rule from firing."""
    return (any(decided(n) is False for n in rule.scope + rule.conditions)
            or any(decided(n) is True for n in rule.exceptions))


def _live(node: ir.Node, decided: _Decided):
    """The concepts of the leaves under node whose value can still matter to it."""
    if decided(node) is not None:
        return
    if isinstance(node.test, ir.LEAVES):
        yield node.test.concept
    for kid in ir.children(node):
        yield from _live(kid, decided)


def _guarding(node: ir.Node) -> str | None:
    """The concept of a test that is false whenever its concept is not documented (every leaf is,
    but a count of zero), or None."""
    test = node.test
    if isinstance(test, ir.LEAVES) and not (isinstance(test, ir.CountAtLeast) and test.n < 1):
        return test.concept
    return None


def _occurrences(node: ir.Node, guards: frozenset[str]):
    """(concept, guards) for every leaf under node: `guards` are the concepts of leaves beside it in
    an enclosing all-of, each false when its concept is not documented, which makes that all-of
    false whatever the leaf's own concept holds."""
    test = node.test
    if isinstance(test, ir.LEAVES):
        yield test.concept, guards
        return
    kids = ir.children(node)
    if isinstance(test, ir.All):
        guards = guards | {c for c in map(_guarding, kids) if c}
    for kid in kids:
        yield from _occurrences(kid, guards)


def enabling(policy: ir.Policy, service: str, indication: str | None, asked: list[str]) -> dict[str, list[str]]:
    """For each asked concept, the earlier asked concepts without whose answer it cannot change the
    decision (FHIR enableWhen ... exists). A rule fires only when its scope and conditions hold, and
    a leaf on an undocumented concept is false, so a concept read only beside such a leaf, in an
    all-of or among a rule's conditions, matters only once that leaf's concept is answered. Only an
    earlier question may enable a later one (two concepts tested together do not disable each other)."""
    found: dict[str, set[str]] = {}
    for rule in policy.rules:
        if not applies(rule, service, indication):
            continue
        top = frozenset(c for c in map(_guarding, rule.scope + rule.conditions) if c)
        for node in ir.rule_nodes(rule):
            for concept, guards in _occurrences(node, top):
                guards = guards - {concept}
                found[concept] = found[concept] & guards if concept in found else set(guards)
    order = {name: k for k, name in enumerate(asked)}
    return {name: sorted((g for g in found.get(name, ()) if order.get(g, len(order)) < order[name]), key=order.get)
            for name in asked if any(order.get(g, len(order)) < order[name] for g in found.get(name, ()))}


def questionnaire(program: ir.Program, vocab: Vocabulary, payer: str, service: str,
                  indication: str | None) -> dict:
    """The Questionnaire resource (FHIR R4 JSON) for one payer and request."""
    policy = program.policy(payer)
    order = {topic: k for k, topic in enumerate(vocab.topics)}
    topic = lambda name: order.get(vocab.concepts[name].topic or "Other facts", len(order))  # noqa: E731
    asked = sorted(facts_read(policy, vocab, service, indication), key=topic)  # as shown: by topic (stable)
    after = enabling(policy, service, indication, asked)
    groups: dict[str, list[dict]] = {}
    for name in asked:
        concept = vocab.concepts[name]
        item = _item(concept, vocab)
        if name in after:
            item["enableWhen"] = [{"question": a, "operator": "exists", "answerBoolean": True} for a in after[name]]
            if len(after[name]) > 1:
                item["enableBehavior"] = "all"
        groups.setdefault(concept.topic or "Other facts", []).append(item)
    groups = dict(sorted(groups.items(), key=lambda g: order.get(g[0], len(order))))
    request = f"{service}" + (f" for {indication}" if indication else "")
    return {
        "resourceType": "Questionnaire",
        "id": _id(f"{payer}-{service}-{indication or 'any'}"),
        "url": URL.format(payer=payer, service=service, indication=indication or "any"),
        "name": _id(f"{payer}_{service}_{indication or 'any'}").replace("-", "_"),
        "title": f"{policy.payer}, {policy.title}: {request}",
        "status": "draft",
        "subjectType": ["Patient"],
        "description": (f"The facts {policy.payer}'s policy \"{policy.title}\" (document {policy.document}, "
                        f"{policy.version}) "
                        f"reads for a request for {request}, generated from its encoding; facts not asked "
                        "here cannot change its decision on this request."),
        "item": [{"linkId": f"topic-{k + 1}", "type": "group", "text": topic, "item": items}
                 for k, (topic, items) in enumerate(groups.items())],
    }


def _item(concept: Concept, vocab: Vocabulary) -> dict:
    item: dict = {"linkId": concept.name, "text": _text(concept, vocab)}
    if concept.kind == "boolean":
        item["type"] = "boolean"
    elif concept.kind == "number":
        whole = concept.whole
        item["type"] = "integer" if whole else "decimal"
        value = "valueInteger" if whole else "valueDecimal"
        cast = int if whole else float
        item["extension"] = [{"url": EXT + "minValue", value: cast(concept.low)},
                             {"url": EXT + "maxValue", value: cast(concept.high)},
                             {"url": EXT + "questionnaire-unit", "valueCoding": _unit(concept.unit)}]
    elif concept.kind in ("enum", "set"):
        item["type"] = "choice"
        if concept.kind == "set":
            item["repeats"] = True
        system = f"urn:reasoner:{vocab.name}:{concept.domain}"
        item["answerOption"] = [{"valueCoding": {"system": system, "code": value, "display": meaning}}
                                for value, meaning in vocab.domains[concept.domain].items()]
    elif concept.kind == "date":
        item["type"] = "date"
    else:  # codes: a list of codes of one system (CPT/HCPCS, ...)
        item["type"] = "string"
        item["repeats"] = True
    return item


def _text(concept: Concept, vocab: Vocabulary) -> str:
    if concept.record:
        record = vocab.records[concept.record]
        key = vocab.domains[record.key_domain].get(concept.key, concept.key)
        return f"{record.meaning} — {key}: {concept.meaning}"
    if concept.kind == "codes":
        return f"{concept.meaning} ({concept.system} codes)"
    return concept.meaning


def _unit(unit: str | None) -> dict:
    code = UCUM_CODES.get(unit or "")
    return {"system": UCUM, "code": code, "display": unit} if code else {"display": unit or ""}


def _id(text: str) -> str:
    """A FHIR id: letters, digits, '-' and '.', at most 64 characters."""
    return "".join(c if c.isalnum() or c in "-." else "-" for c in text)[:64]


def prefill(q: dict, facts: dict, vocab: Vocabulary, patient_id: str | None = None) -> dict:
    """A QuestionnaireResponse answering `q` from a patient's facts (DTR's prefill): each question
    the facts document is answered, the others left for a person; status in-progress."""
    groups = []
    for group in q["item"]:
        answered = [{"linkId": item["linkId"], "text": item["text"], "answer": _answers(item, facts[item["linkId"]])}
                    for item in group["item"] if item["linkId"] in facts and enabled(item, facts)]
        if answered:
            groups.append({"linkId": group["linkId"], "text": group["text"], "item": answered})
    response = {"resourceType": "QuestionnaireResponse", "questionnaire": q["url"], "status": "in-progress",
                "item": groups}
    if patient_id:
        response["id"] = _id(patient_id)
    return response


def enabled(item: dict, facts: dict) -> bool:
    """Whether a question is shown given the answers so far (its enableWhen questions answered)."""
    return all(w["question"] in facts for w in item.get("enableWhen", ()))


def _answers(item: dict, value) -> list[dict]:
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if item["type"] == "choice":
        options = {o["valueCoding"]["code"]: o["valueCoding"] for o in item["answerOption"]}
        return [{"valueCoding": options[v]} for v in values]
    key = {"boolean": "valueBoolean", "integer": "valueInteger", "decimal": "valueDecimal", "date": "valueDate",
           "string": "valueString"}[item["type"]]
    return [{key: v.isoformat() if hasattr(v, "isoformat") else v} for v in values]
