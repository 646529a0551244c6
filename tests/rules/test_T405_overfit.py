import numpy as np

from fitdoctor.monitor import Trace
from fitdoctor.rules import get_rule

RULE = get_rule("overfit")
EPOCHS = np.arange(60)
TRAIN = list(1.0 / (1 + 0.2 * EPOCHS))


def test_validation_loss_rising_while_training_falls_fires_at_the_best_epoch():
    val = list(np.r_[np.linspace(1.0, 0.5, 20), np.linspace(0.52, 1.2, 40)])
    [f] = RULE.detect_training(Trace(loss=TRAIN, val_loss=val))
    assert f.epoch == 20 and f.evidence["best_epoch"] == 19
    assert f.evidence["val_rise"] > 2


def test_quiet_when_validation_follows_training():
    assert RULE.detect_training(Trace(loss=TRAIN, val_loss=[1.1 * v for v in TRAIN])) == []
    assert RULE.detect_training(Trace(loss=TRAIN)) == []
