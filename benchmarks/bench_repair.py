"""Wall time of ``fitdoctor.repair`` on seed 003's income setting next to one plain ``model.fit``.

Run: ``KERAS_BACKEND=jax PYTHONPATH=src python benchmarks/bench_repair.py`` (target: repair <= 3x the
plain fit while trying >= 8 candidate configurations). Both are timed in this process, after a
warm-up of each, so import and first-compilation costs are excluded from both.
"""
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from fitdoctor.data.loading import load_dataset  # noqa: E402
from fitdoctor import repair  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
INCOME = os.path.join(HERE, "..", "..", "shared", "data", "income.csv")


def user_model():
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    m.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mse")
    return m


def main() -> None:
    ds = load_dataset(os.environ.get("INCOME_CSV", INCOME), "income")
    clean, _ = ds.dropna()  # the user's plain fit needs the complete rows (with NaN it is NaN at once)
    # warm-up both (first JAX compilation); the first repair's time is printed too
    t = time.perf_counter()
    user_model().fit(clean.X, clean.y, epochs=200, batch_size=32, verbose=0)
    t_fit_cold = time.perf_counter() - t
    t = time.perf_counter()
    repair(user_model(), ds.X, ds.y, epochs=200, batch_size=32)
    t_rep_cold = time.perf_counter() - t

    t, c = time.perf_counter(), time.process_time()
    user_model().fit(clean.X, clean.y, epochs=200, batch_size=32, verbose=0)
    t_fit, c_fit = time.perf_counter() - t, time.process_time() - c

    t, c = time.perf_counter(), time.process_time()
    rep = repair(user_model(), ds.X, ds.y, epochs=200, batch_size=32)
    t_rep, c_rep = time.perf_counter() - t, time.process_time() - c

    print(f"plain model.fit (Adam lr 0.01, 200 epochs, batch 32): {t_fit:.2f} s")
    print(f"fitdoctor.repair:                                    {t_rep:.2f} s")
    print(f"ratio repair / fit: {t_rep / t_fit:.2f}x (target <= 3x); CPU time {c_rep:.2f} s / {c_fit:.2f} s = "
          f"{c_rep / c_fit:.2f}x (what to compare on a shared machine)")
    print(f"first calls in this process (XLA compilation included): fit {t_fit_cold:.2f} s, repair {t_rep_cold:.2f} s, "
          f"ratio {t_rep_cold / t_fit_cold:.2f}x")
    print(f"candidate configurations tried: {rep.n_candidates} (ablation runs: {len(rep.ablation)}; target >= 8)")
    budget = dict(getattr(rep, "budget_", {}) or {})
    if budget:
        from fitdoctor.reporting.text import budget_line

        budget.update(fit_seconds=t_fit, ratio_to_fit=t_rep / t_fit)
        print(budget_line(budget))
        print("seconds by stage: " + ", ".join(f"{k} {v:.2f}" for k, v in budget["stage_seconds"].items()))
    print(f"after_loss {rep.after_loss:.6g} vs least squares {rep.reference.linear_mse:.6g} "
          f"(ratio {rep.after_loss / rep.reference.linear_mse:.4f}); kept: {', '.join(rep.applied_names)}")


if __name__ == "__main__":
    main()
