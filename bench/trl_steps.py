"""Drive a TRL trainer one optimizer step at a time (the benches time single steps, interleaved with
the harness's, instead of calling `Trainer.train()`)."""
from __future__ import annotations

from typing import Callable


def one_step_driver(trainer, batch_size: int) -> Callable[[int], tuple[float, dict]]:
    """step(i) -> (loss, inputs): batch i (1-based, wrapping) through `training_step`, clipping at
    1.0, optimizer and scheduler steps, as `Trainer.train()` would."""
    trainer.create_optimizer_and_scheduler(num_training_steps=1000)
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer.train(); we drive the steps ourselves
    ds = trainer.train_dataset

    def step(i: int) -> tuple[float, dict]:
        idx = [((i - 1) * batch_size + j) % len(ds) for j in range(batch_size)]
        inputs = trainer._prepare_inputs(trainer.data_collator([ds[k] for k in idx]))
        trainer.model.train()
        loss = trainer.training_step(trainer.model, inputs)
        trainer.accelerator.clip_grad_norm_(trainer.model.parameters(), 1.0)
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
        trainer.model.zero_grad(set_to_none=True)
        return float(loss), inputs

    return step
