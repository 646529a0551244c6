from fitdoctor.rules import get_rule
from rule_fixtures import firing, healthy

RULE = get_rule("shape-broadcast")


def test_custom_loss_that_broadcasts_is_measured():
    [f] = RULE.detect(firing("shape-broadcast").context())
    assert f.evidence["y_shape"] == [200]
    assert f.evidence["loss_as_given"] != f.evidence["loss_aligned"]


def test_more_target_columns_than_outputs_fires():
    s = healthy("shape-broadcast")
    import numpy as np
    [f] = RULE.detect(s.with_(y=np.c_[s.y, s.y]).context())
    assert f.evidence["y_shape"] == [200, 2]


def test_quiet_for_builtin_losses_and_for_reshaped_targets():
    assert RULE.detect(healthy("shape-broadcast").context()) == []
    s = firing("shape-broadcast")
    assert RULE.detect(s.with_(y=s.y.reshape(-1, 1)).context()) == []


def _plain_mse(y_true, y_pred):
    import keras

    return keras.ops.mean(keras.ops.square(y_true - y_pred))


def test_quiet_for_a_plain_loss_function_because_keras_aligns_it():
    """compile() wraps a plain function so that y_true (n,) meets y_pred (n, 1) row by row: the same
    loss with y as (n,) and as (n, 1) (measured by Keras itself) - so the rule must not fire."""
    import numpy as np
    from rule_fixtures import dense_model
    s = healthy("shape-broadcast").with_(model=dense_model(loss=_plain_mse))
    model = s.model()
    X32, y32 = s.X.astype("float32"), s.y.astype("float32")
    flat, column = (model.evaluate(X32, t, verbose=0, batch_size=len(X32)) for t in (y32, y32[:, None]))
    assert np.isclose(flat, column, rtol=1e-5)
    assert RULE.detect(s.context()) == []
