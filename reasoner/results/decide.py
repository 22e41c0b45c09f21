"""Decisions per payer, as data: what was decided, by which rule, citing which section."""
from __future__ import annotations

from dataclasses import dataclass, replace

from reasoner.language import ir
from reasoner.engines.reference import Engine
from reasoner.language.load import Loaded
from reasoner.io.patient import Patient


@dataclass(frozen=True)
class Decision:
    policy: str
    payer: str
    document: str
    kind: str  # covered | denied | review | not_addressed
    subkind: str | None
    detail: str | None
    prior_auth: str | None
    rule: str | None  # name of the deciding rule; None when no rule of the policy applies
    rule_label: str
    cite: ir.Citation | None
    assumptions: tuple[str, ...] = ()  # readings the decision rests on that the document does not state
    version_of: str | None = None  # the current policy, when an earlier version of it decided (by the date)
    effective: tuple = (None, None)  # the deciding policy's period (None: open), as its header states it

    def as_json(self) -> dict:
        return {
            "policy": self.policy, "payer": self.payer, "document": self.document,
            "decision": self.kind, "subkind": self.subkind, "detail": self.detail,
            "prior_auth": self.prior_auth, "rule": self.rule, "rule_label": self.rule_label,
            "citation": None if self.cite is None else {"document": self.cite.document, "section": self.cite.section},
            "assumptions": list(self.assumptions),
            "version_of": self.version_of,
            "effective": period_json(self.effective),
        }


def period_json(period: tuple) -> dict:
    """An effective period as JSON: first and last day as YYYY-MM-DD, null where it is open."""
    return {"from": period[0] and period[0].isoformat(), "to": period[1] and period[1].isoformat()}


NO_RULE = "No rule of this policy applies to this request"
LINES_ASSUMED = "the document names no line of business; it is applied to every line"


def assumptions(policy: ir.Policy) -> tuple[str, ...]:
    return (LINES_ASSUMED,) if policy.lines_assumed else ()


class Reasoner:
    """Decides patients under a loaded program; one pyDatalog knowledge base per instance."""

    def __init__(self, loaded: Loaded):
        self.loaded = loaded
        self.engine = Engine(loaded.program, loaded.vocab)

    def policy_ids(self) -> tuple[str, ...]:
        """The current policies (one per document; earlier versions are reached by date)."""
        return tuple(p.id for p in self.loaded.program.current)

    def version(self, policy_id: str, patient: Patient) -> str:
        """The version of `policy_id` that decides this patient's request (by its request_date)."""
        return self.loaded.program.in_force(policy_id, patient.facts.get("request_date")).id

    def decide(self, patient: Patient, policies=None, by_date: bool = True) -> list[Decision]:
        """Each asked policy's decision (default: every current one). With `by_date`, a current
        policy with earlier versions decides by the version in force at the request's date."""
        wanted = list(policies) if policies is not None else list(self.policy_ids())
        if by_date:
            wanted = list(dict.fromkeys(self.version(pid, patient) for pid in wanted))
        evaluation = self.engine.evaluate(patient.facts, wanted)
        return [self.versioned(self.decision(self.loaded.program.policy(pid), rule)) for pid, rule in evaluation.decided.items()]

    def versioned(self, decision: Decision) -> Decision:
        """The decision with its version's place among the document's versions, if it has several."""
        program = self.loaded.program
        if len(program.versions(decision.policy)) == 1:
            return decision
        latest = program.latest(decision.policy)
        return replace(decision, version_of=None if latest == decision.policy else latest)

    @staticmethod
    def decision(policy: ir.Policy, rule_name: str | None) -> Decision:
        if rule_name is None:
            return Decision(policy.id, policy.payer, policy.document, "not_addressed", None, None, None,
                            None, NO_RULE, None, assumptions(policy), effective=policy.effective)
        rule = next(r for r in policy.rules if r.name == rule_name)
        o = rule.outcome
        return Decision(policy.id, policy.payer, policy.document, o.kind, o.subkind, o.detail, o.prior_auth,
                        rule.name, rule.label, rule.cite, assumptions(policy), effective=policy.effective)
