from __future__ import annotations

from ..base import Rule

#: an early layer's relative gradient (||g|| / ||W||) at most this fraction of the last layer's
RATIO = 1e-3
#: per-step update-to-weight ratios at or below this count as frozen weights
UPDATE_FLOOR = 1e-7


class VanishingGradients(Rule):
    """Checks for gradients too small to move the weights.

    ## What it does
    During training, compares each layer's update-to-weight ratio (step size over weight norm)
    and gradient norm with the others and with their start, and fires when the early layers'
    updates are ~1e-7 of their weights or 1000x smaller than the last layer's while the loss is
    still far above the optimum.

    Minimum evidence: per-layer gradient norms of at least 2 layers in a sample after step 0,
    and the pattern in at least half of those samples, the last one included.

    ## Why is this bad?
    Saturated sigmoids/tanh and deep stacks multiply small derivatives: the first layers stop
    learning, the loss plateaus, and more epochs do not help.

    ## Example
    ```python
    keras.Sequential([keras.layers.Dense(32, activation="sigmoid") for _ in range(10)] + [keras.layers.Dense(1)])
    ```

    ## Use instead
    ```python
    keras.Sequential([keras.layers.Dense(32, activation="relu", kernel_initializer="he_normal") for _ in range(3)]
                     + [keras.layers.Dense(1)])
    ```
    """

    code = "T402"
    name = "vanishing-gradients"
    severity = "warning"

    def detect_training(self, trace):
        import math

        from ...findings import Fix

        hits = []
        for s in trace.samples:
            rel = [(name, s.grad_norms[name] / s.weight_norms[name]) for name in s.grad_norms
                   if s.weight_norms.get(name) and math.isfinite(s.grad_norms[name])]
            if len(rel) < 2 or s.step == 0:
                continue
            last = rel[-1][1]
            early_name, early = min(rel[:-1], key=lambda r: r[1])
            small_update = any(0 < u <= UPDATE_FLOOR for n, u in s.update_ratios.items() if n != rel[-1][0])
            if (last > 0 and early <= RATIO * last) or small_update:
                hits.append((s, early_name, early, last))
        sampled = [s for s in trace.samples if s.step > 0 and len(s.grad_norms) >= 2]
        if not hits or len(hits) < max(1, len(sampled) // 2) or hits[-1][0] is not sampled[-1]:
            return []
        fin = trace.finite_loss
        far = trace.far_from_optimum(float(fin[-1]), 1.5) if len(fin) else None
        if far is False:
            return []
        s, name, early, last = hits[0]
        return [self.finding(
            f"gradients vanish before the first layers: layer {name!r}'s gradient is {early:.2g} of its weights' norm, "
            f"{early / last if last else 0:.2g}x the last layer's ({last:.2g}) from epoch {s.epoch}",
            {"layer": name, "relative_gradient": early, "last_layer_relative_gradient": last,
             "ratio": early / last if last else 0.0, "samples_affected": len(hits), "samples": len(sampled),
             "update_ratios_last_sample": sampled[-1].update_ratios},
            fix=Fix("Use ReLU-family activations with He initialisation (and fewer saturating layers)",
                    'keras.layers.Dense(units, activation="relu", kernel_initializer="he_normal")', safe=False,
                    intervention="sane_initializer"),
            epoch=s.epoch, step=s.step)]
