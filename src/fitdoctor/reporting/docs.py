"""Rule documentation rendered from the rules' docstrings (``fitdoctor explain`` and docs/rules.md)."""
from __future__ import annotations

from ..rules import RULES
from ..rules.base import FAMILIES, OPTIONAL_SECTIONS, REQUIRED_SECTIONS


def rule_markdown(rule, level: int = 1) -> str:
    h = "#" * level
    docs = rule.docs()
    out = [f"{h} {rule.name} ({rule.code})", "", f"Family: {rule.family}. Default severity: {rule.severity}.", "",
           docs.get("summary", ""), ""]
    for section in REQUIRED_SECTIONS + OPTIONAL_SECTIONS:
        if section in docs:
            out += [f"{h}# {section}", "", docs[section], ""]
    return "\n".join(out).rstrip() + "\n"


def rules_reference_markdown() -> str:
    """The whole rule reference page (docs/rules.md)."""
    out = ["# Rule reference", "",
           "Generated from the rules' docstrings by `python -m fitdoctor.reporting.docs`; "
           "a test fails when this page drifts from the code.", "",
           "| code | name | severity | summary |", "|---|---|---|---|"]
    out += [f"| {r.code} | [`{r.name}`](#{r.name}-{r.code.lower()}) | {r.severity} | {r.summary()} |" for r in RULES]
    out.append("")
    for prefix, family in FAMILIES.items():
        out += [f"## {family.capitalize()} ({prefix})", ""]
        out += [rule_markdown(r, level=3) for r in RULES if r.code.startswith(prefix)]
    return "\n".join(out)


if __name__ == "__main__":  # python -m fitdoctor.reporting.docs > docs/rules.md
    import sys

    sys.stdout.write(rules_reference_markdown())
