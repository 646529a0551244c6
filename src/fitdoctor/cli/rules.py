"""fitdoctor rules: list the rule catalog."""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("rules", help="list every rule with its code, name, severity and summary",
                       description="List the rule catalog. Select or ignore rules by code, prefix or name.")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(run=run)


def run(args) -> int:
    import json

    from ..rules import RULES

    if args.format == "json":
        print(json.dumps([{"code": r.code, "name": r.name, "severity": r.severity, "family": r.family,
                           "summary": r.summary()} for r in RULES], indent=2))
        return 0
    for r in RULES:
        print(f"{r.code} {r.name:<26} {r.severity:<8} {r.summary()}")
    return 0
