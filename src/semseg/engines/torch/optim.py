"""MXNet 1.9.1's optimizers (sgd, nag, adam, adagrad, rmsprop) with their own update rules, in PyTorch.

They differ from torch.optim's built-ins, so the same hyperparameters train the same way on either engine:
- the gradient is first multiplied by `rescale_grad` (1 / batch size, as gluon.Trainer.step does);
- sgd: the learning rate and weight decay enter the momentum buffer (`mom = m*mom - lr*(g + wd*w); w += mom`),
  so a schedule changes the step at once; torch.optim.SGD keeps lr outside the buffer;
- nag: `g' = g + wd*w; w += m*(m*mom - lr*g') - lr*g'; mom = m*mom - lr*(g + wd*w_new)`: the learning rate is
  inside the buffer, and MXNet's in-place kernel decays the momentum with the already updated weight;
- adam: weight decay added to the gradient, the bias correction folded into the learning rate
  (`lr * sqrt(1-b2^t) / (1-b1^t)`) and epsilon added to sqrt(v) unscaled (torch adds it to the corrected one);
- adagrad: `h += g^2; w -= lr*(g / sqrt(h + 1e-7) + wd*w)`, epsilon inside the root;
- rmsprop: centered (MXNet's RMSPropAlex, where `gamma2` is the momentum): `n = g1*n + (1-g1)*g^2;
  a = g1*a + (1-g1)*g; d = g2*d - lr*g / sqrt(n - a^2 + eps); w += d`.
Each parameter group carries `lr_mult` (GluonCV's 10 for the heads); weight decay applies to every parameter,
as in Gluon. Updates use torch's multi-tensor (`_foreach`) kernels: one launch per operation, not per tensor.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

from semseg.contract.config import OPTIMIZERS, Config
from semseg.engines.torch.nets import Network
from semseg.fit.schedule import Schedule

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
ADAGRAD_EPS = 1e-7
RMSPROP_EPS = 1e-8

_STATE = {
    "sgd": ("mom",),
    "nag": ("mom",),
    "adam": ("mean", "var"),
    "adagrad": ("history",),
    "rmsprop": ("n", "g", "delta"),
}


class MXNetOptimizer(torch.optim.Optimizer):
    """One of MXNet's optimizers, with its learning-rate `schedule` (update number -> rate; as gluon.Trainer's
    optimizer holds its scheduler): set `rescale_grad` and the learning rate (`set_lr`) before each `step`."""

    def __init__(
        self,
        groups: Iterable[dict[str, Any]],
        kind: str,
        *,
        lr: float,
        wd: float,
        momentum: float = 0.0,
        gamma1: float = 0.9,
        gamma2: float = 0.9,
        schedule: Callable[[int], float] | None = None,
    ) -> None:
        if kind not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {kind!r}")
        defaults = {"lr": lr, "lr_mult": 1.0, "wd": wd, "momentum": momentum, "gamma1": gamma1, "gamma2": gamma2}
        super().__init__(list(groups), defaults)
        self.kind = kind
        self.rescale_grad = 1.0
        self.updates = 0  # MXNet's num_update: the schedule's input and Adam's t
        self.schedule = schedule or (lambda _update: lr)

    def set_lr(self, lr: float) -> None:
        for group in self.param_groups:
            group["lr"] = lr

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> None:  # type: ignore[override]
        self.updates += 1
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = torch._foreach_mul([p.grad for p in params], self.rescale_grad)
            states = [self._state(p) for p in params]
            lr = group["lr"] * group["lr_mult"]
            getattr(self, f"_{self.kind}")(group, params, grads, states, lr)

    def _state(self, param: torch.Tensor) -> list[torch.Tensor]:
        state = self.state[param]
        if not state:
            for name in _STATE[self.kind]:
                state[name] = torch.zeros_like(param, memory_format=torch.preserve_format)
        return [state[name] for name in _STATE[self.kind]]

    @staticmethod
    def _column(states: list[list[torch.Tensor]], i: int) -> list[torch.Tensor]:
        return [s[i] for s in states]

    def _sgd(self, group: dict[str, Any], w: list[torch.Tensor], g: list[torch.Tensor], s: Any, lr: float) -> None:
        wd, momentum = group["wd"], group["momentum"]
        torch._foreach_add_(g, w, alpha=wd)  # g + wd*w
        if momentum == 0.0:
            torch._foreach_add_(w, g, alpha=-lr)
            return
        mom = self._column(s, 0)
        torch._foreach_mul_(mom, momentum)
        torch._foreach_add_(mom, g, alpha=-lr)
        torch._foreach_add_(w, mom)

    def _nag(self, group: dict[str, Any], w: list[torch.Tensor], g: list[torch.Tensor], s: Any, lr: float) -> None:
        wd, momentum = group["wd"], group["momentum"]
        step = torch._foreach_add(g, w, alpha=wd)
        if momentum == 0.0:
            torch._foreach_add_(w, step, alpha=-lr)
            return
        mom = self._column(s, 0)
        ahead = torch._foreach_mul(mom, momentum)
        torch._foreach_add_(ahead, step, alpha=-lr)
        torch._foreach_add_(w, ahead, alpha=momentum)
        torch._foreach_add_(w, step, alpha=-lr)
        # MXNet's kernel writes the weight in place first, so its momentum sees the new weight's decay
        torch._foreach_add_(g, w, alpha=wd)
        torch._foreach_mul_(mom, momentum)
        torch._foreach_add_(mom, g, alpha=-lr)

    def _adam(self, group: dict[str, Any], w: list[torch.Tensor], g: list[torch.Tensor], s: Any, lr: float) -> None:
        beta1, beta2 = ADAM_BETAS
        t = self.updates
        lr = lr * math.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
        torch._foreach_add_(g, w, alpha=group["wd"])
        mean, var = self._column(s, 0), self._column(s, 1)
        torch._foreach_lerp_(mean, g, 1.0 - beta1)
        torch._foreach_mul_(var, beta2)
        torch._foreach_addcmul_(var, g, g, value=1.0 - beta2)
        denominator = torch._foreach_sqrt(var)
        torch._foreach_add_(denominator, ADAM_EPS)
        torch._foreach_addcdiv_(w, mean, denominator, value=-lr)

    def _adagrad(self, group: dict[str, Any], w: list[torch.Tensor], g: list[torch.Tensor], s: Any, lr: float) -> None:
        history = self._column(s, 0)
        torch._foreach_addcmul_(history, g, g)
        denominator = torch._foreach_add(history, ADAGRAD_EPS)
        torch._foreach_sqrt_(denominator)
        step = torch._foreach_div(g, denominator)
        torch._foreach_add_(step, w, alpha=group["wd"])
        torch._foreach_add_(w, step, alpha=-lr)

    def _rmsprop(self, group: dict[str, Any], w: list[torch.Tensor], g: list[torch.Tensor], s: Any, lr: float) -> None:
        gamma1, gamma2 = group["gamma1"], group["gamma2"]
        torch._foreach_add_(g, w, alpha=group["wd"])
        n, mean, delta = self._column(s, 0), self._column(s, 1), self._column(s, 2)
        torch._foreach_mul_(n, gamma1)
        torch._foreach_addcmul_(n, g, g, value=1.0 - gamma1)
        torch._foreach_lerp_(mean, g, 1.0 - gamma1)
        denominator = torch._foreach_addcmul(n, mean, mean, value=-1.0)
        torch._foreach_add_(denominator, RMSPROP_EPS)
        torch._foreach_sqrt_(denominator)
        torch._foreach_mul_(delta, gamma2)
        torch._foreach_addcdiv_(delta, g, denominator, value=-lr)
        torch._foreach_add_(w, delta)


def trainer_for(net: Network, config: Config) -> MXNetOptimizer:
    """The configuration's optimizer and schedule for `net` (GluonCV's learning-rate multipliers per group)."""
    return MXNetOptimizer(
        net.param_groups(config.learning_rate, config.backbone_lr_mult),
        config.optimizer,
        lr=config.learning_rate,
        wd=config.weight_decay,
        momentum=config.momentum if config.uses_momentum else 0.0,
        gamma1=config.gamma1,
        gamma2=config.gamma2,
        schedule=Schedule(config),
    )
