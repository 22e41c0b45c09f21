"""Policy families: a policy that extends another (a local edition of a model policy).

`policy bcbsal extends cam70141 { ... }` is resolved here, on syntax, before checking: the result is
an ordinary policy file whose rules are the child's list in its own order, so every engine, the
explainer and the solver see one flat policy and need nothing new.

- Named criteria and code sets are inherited; a child's own of the same name replaces the parent's.
- Rules are listed by the child: `inherit NAME cite "..."` places a parent rule and says where the
  child's text states it (the rule's own citation then points into the child's document);
  `rule NAME ...` adds a rule or, with a parent rule's name, replaces it there; `remove NAME` drops
  one. A parent rule the child neither inherits, replaces nor removes is an error: silence would
  leave it unclear whether the child's text keeps it.
- What an inherited criterion or rule body cites by its own `cite` stays a citation of the parent's
  document (`origin`): that is the text those words were checked against.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from reasoner.errors import Problem, did_you_mean
from reasoner.language import syntax as s


@dataclass(frozen=True)
class Changes:
    """What a child policy does to its parent's, for `lint` and `reasoner policies`."""

    parent: str
    inherited: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    criteria_replaced: tuple[str, ...] = ()
    criteria_added: tuple[str, ...] = ()

    def summary(self) -> str:
        parts = [f"{len(self.inherited)} rule(s) inherited"]
        for word, names in (("replaced", self.replaced), ("added", self.added), ("removed", self.removed),
                            ("criteria replaced", self.criteria_replaced), ("criteria added", self.criteria_added)):
            if names:
                parts.append(f"{word}: {', '.join(names)}")
        return f"extends {self.parent}: " + "; ".join(parts) + "."


def document_of(tree: s.PolicyFile) -> str:
    """The document id a policy's header names ('?' when it names none)."""
    field = next((f for f in tree.header.fields if f.key == "document"), None)
    return field.values[0] if field and field.values else "?"


def extend(child: s.PolicyFile, parent: s.PolicyFile) -> tuple[s.PolicyFile, Changes, list[Problem]]:
    """The child as a flat policy file, what it changed, and what is wrong with its rule list.
    `parent` must itself be flat (already extended, if it extends another)."""
    origin = document_of(parent)
    problems: list[Problem] = []
    parent_rules = {r.name: r for r in parent.rules}
    own_rules = {r.name: r for r in child.rules}
    inherits = {}
    for inherit in child.inherits:
        if inherit.name in inherits:
            problems.append(Problem(str(inherit.span), f"rule '{inherit.name}' is inherited twice."))
        elif inherit.name not in parent_rules:
            problems.append(Problem(str(inherit.span), f"{parent.header.policy_id} has no rule '{inherit.name}' to inherit."
                                                       f"{did_you_mean(inherit.name, list(parent_rules))}"))
        elif inherit.name in own_rules:
            problems.append(Problem(str(inherit.span), f"rule '{inherit.name}' is both inherited and written here; "
                                                       "keep one (a rule written here replaces the parent's)."))
        inherits.setdefault(inherit.name, inherit)
    removed = []
    for remove in child.removes:
        if remove.name not in parent_rules:
            problems.append(Problem(str(remove.span), f"{parent.header.policy_id} has no rule '{remove.name}' to remove."
                                                      f"{did_you_mean(remove.name, list(parent_rules))}"))
        elif remove.name in inherits or remove.name in own_rules:
            problems.append(Problem(str(remove.span), f"rule '{remove.name}' is removed but also listed here."))
        removed.append(remove.name)
    for name in parent_rules:
        if name not in inherits and name not in own_rules and name not in removed:
            problems.append(Problem(str(child.header.span), f"rule '{name}' of {parent.header.policy_id} is neither inherited "
                                                            f"nor removed: write inherit {name} cite \"<where this "
                                                            f"policy's text states it>\", or remove {name}."))
    rules = []
    for name in child.order:
        if name in own_rules:
            rules.append(own_rules[name])
        elif name in inherits and name in parent_rules:
            rules.append(replace(parent_rules[name], cite=inherits[name].cite,
                                 origin=parent_rules[name].origin or origin))
    own_defines = {d.name for d in child.defines}
    own_codes = {c.name for c in child.codesets}
    defines = tuple(replace(d, origin=d.origin or origin) for d in parent.defines if d.name not in own_defines)
    codesets = tuple(replace(c, origin=c.origin or origin) for c in parent.codesets if c.name not in own_codes)
    parent_defines = {d.name for d in parent.defines}
    changes = Changes(
        parent.header.policy_id,
        inherited=tuple(n for n in child.order if n in inherits),
        replaced=tuple(n for n in child.order if n in own_rules and n in parent_rules),
        added=tuple(n for n in child.order if n in own_rules and n not in parent_rules),
        removed=tuple(removed),
        criteria_replaced=tuple(d.name for d in child.defines if d.name in parent_defines),
        criteria_added=tuple(d.name for d in child.defines if d.name not in parent_defines),
    )
    flat = replace(child, codesets=codesets + child.codesets, defines=defines + child.defines, rules=tuple(rules),
                   inherits=(), removes=(), order=tuple(r.name for r in rules))
    return flat, changes, problems
