"""fitdoctor explain CODE|NAME: print a rule's documentation."""
from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("explain", help="explain a rule: what it checks, why it matters, what to do",
                       description="Print a rule's documentation (from its docstring).",
                       epilog="examples:\n  fitdoctor explain O301\n  fitdoctor explain adam-large-target",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("rule", metavar="CODE|NAME", help="a rule code (O301) or name (adam-large-target)")
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    p.set_defaults(run=run)


def run(args) -> int:
    import json

    from ..reporting.docs import rule_markdown
    from ..rules import get_rule

    rule = get_rule(args.rule)
    if args.format == "json":
        print(json.dumps({"code": rule.code, "name": rule.name, "severity": rule.severity,
                          "family": rule.family, **rule.docs()}, indent=2))
    else:
        print(rule_markdown(rule))
    return 0
