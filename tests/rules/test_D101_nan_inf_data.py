import numpy as np

from fitdoctor.rules import get_rule
from rule_fixtures import firing, healthy

RULE = get_rule("nan-inf-data")


def test_fires_with_rows_and_columns_of_the_empty_cells():
    [f] = RULE.detect(firing("nan-inf-data").context())
    assert f.severity == "error"
    assert f.evidence["rows"] == [3, 17]
    assert f.evidence["columns"] == {"x1": 2}
    assert f.fix.intervention == "drop_nonfinite_rows"


def test_counts_infinite_targets_separately():
    s = healthy("nan-inf-data")
    y = s.y.copy(); y[9] = np.inf
    [f] = RULE.detect(s.with_(y=y).context())
    assert f.evidence["n_inf_cells"] == 1 and f.evidence["rows"] == [9]


def test_quiet_on_complete_data():
    assert RULE.detect(healthy("nan-inf-data").context()) == []


def test_huge_finite_values_whose_sum_overflows_are_not_reported():
    s = healthy("nan-inf-data")
    X = s.X.copy(); X[[2, 5], 0] = 1.5e308  # finite, but their sum is inf
    ctx = s.with_(X=X).context()
    assert ctx.finite_rows.all()
    assert RULE.detect(ctx) == []
