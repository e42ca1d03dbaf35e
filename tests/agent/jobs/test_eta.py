"""Time left comes from measured whole epochs and stays within 25 % after the first one.

Simulated runs on a fake clock (seeded, no training): noisy epochs, a slow first epoch,
batches that warm up at the start of each epoch, a validation pause at its end, a time budget
that shortens the run and a run resumed by another worker.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from pollen_agent.jobs.eta import EpochClock
from pollen_agent.jobs.images import SplitImages
from pollen_agent.jobs.training import _epoch_clock
from pollen_agent.ml.recipe import TrainConfig


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Run:
    """One simulated run: every batch's and every validation's duration, drawn in advance."""

    epochs: int
    steps: int = 40
    batches: list[list[float]] = field(default_factory=list)
    validation: list[float] = field(default_factory=list)
    final_check: float = 0.0

    @classmethod
    def draw(cls, seed: int, epochs: int, *, epoch_noise: float = 0.10) -> Run:
        rng = random.Random(seed)
        run = cls(epochs=epochs)
        for epoch in range(1, epochs + 1):
            # The whole epoch is slower or faster (a busy machine), the first one more so,
            # and its first batches warm up (caches, memory being allocated).
            pace = rng.uniform(1 - epoch_noise, 1 + epoch_noise) * (1.10 if epoch == 1 else 1.0)
            run.batches.append(
                [
                    1.5 * pace * (2.0 if step < 2 else 1.0) * rng.uniform(0.7, 1.3)
                    for step in range(run.steps)
                ]
            )
            run.validation.append(12.0 * pace * rng.uniform(0.9, 1.1))
        # The final check: the test set (as large as validation) and its mirror image.
        run.final_check = 2 * 12.0 * rng.uniform(0.9, 1.1)
        return run

    def end(self, from_epoch: int = 1, planned: int | None = None) -> float:
        last = planned or self.epochs
        return sum(
            sum(self.batches[e - 1]) + self.validation[e - 1] for e in range(from_epoch, last + 1)
        )


def _relative_errors(run: Run, clock: EpochClock, fake: FakeClock, *, plan_to: int = 0):
    """Drive ``clock`` through ``run``; return the relative error of every estimate made
    after the first epoch ended, against the time really left."""
    planned = run.epochs
    schedule: list[tuple[float, float | None]] = []  # (time, estimate) after epoch 1
    start = fake.now
    for epoch in range(clock.done + 1, planned + 1):
        for step, seconds in enumerate(run.batches[epoch - 1], start=1):
            fake.now += seconds
            clock.step()
            if clock.durations:
                schedule.append((fake.now, clock.seconds_left(step / run.steps)))
        fake.now += run.validation[epoch - 1]
        clock.epoch_end(epoch)
        if epoch == 1 and plan_to:
            planned = plan_to
            clock.plan(plan_to)
        if epoch == planned:
            break
    finish = fake.now + run.final_check
    assert schedule and fake.now > start
    return [abs(estimate - (finish - at)) / (finish - at) for at, estimate in schedule]


@pytest.mark.parametrize("seed", range(20))
def test_every_estimate_after_the_first_epoch_is_within_a_quarter(seed):
    run = Run.draw(seed, epochs=12)
    fake = FakeClock()
    clock = EpochClock(epochs=run.epochs, tail_factor=2.0, clock=fake)
    errors = _relative_errors(run, clock, fake)
    assert max(errors) <= 0.25, f"worst {max(errors):.0%} (seed {seed})"


def test_the_pace_of_the_whole_run_so_far_would_be_far_off():
    # Why whole epochs: the old estimate priced what is left at the run's average pace so
    # far, by batches, which misses the validation pauses and the slow first epoch.
    run = Run.draw(3, epochs=12)
    fake = FakeClock()
    clock = EpochClock(epochs=run.epochs, tail_factor=2.0, clock=fake)
    start, worst = fake.now, 0.0
    finish = fake.now + run.end() + run.final_check
    done = 0
    for epoch in range(1, run.epochs + 1):
        for seconds in run.batches[epoch - 1]:
            fake.now += seconds
            done += 1
            fraction = done / (run.epochs * run.steps)
            naive = (fake.now - start) * (1 - fraction) / fraction
            if epoch > 1:
                worst = max(worst, abs(naive - (finish - fake.now)) / (finish - fake.now))
        fake.now += run.validation[epoch - 1]
        clock.epoch_end(epoch)
    assert worst > 0.25


@pytest.mark.parametrize("seed", range(5))
def test_a_time_budget_that_shortens_the_run_is_followed(seed):
    run = Run.draw(seed, epochs=25)
    fake = FakeClock()
    clock = EpochClock(epochs=25, tail_factor=2.0, clock=fake)
    errors = _relative_errors(run, clock, fake, plan_to=8)
    assert clock.done == 8
    assert max(errors) <= 0.25


def test_the_time_budget_caps_the_estimate():
    fake = FakeClock()
    clock = EpochClock(epochs=50, budget_seconds=600, clock=fake)
    fake.now += 60
    clock.epoch_end(1)
    # 49 more epochs of 60 s would take 49 minutes, but the recipe stops at 10.
    assert clock.seconds_left(0.0) == pytest.approx(540)


@pytest.mark.parametrize("seed", range(5))
def test_a_resumed_run_keeps_its_measured_epochs_and_its_plan(seed):
    run = Run.draw(seed, epochs=12)
    records = [
        {"epoch": e, "seconds": sum(run.batches[e - 1]) + run.validation[e - 1]}
        for e in range(1, 5)
    ]
    splits = {
        "val": SplitImages(images=[None] * 20, labels=[0] * 20, ids=list(range(20))),
        "test": SplitImages(images=[None] * 20, labels=[0] * 20, ids=list(range(20))),
    }
    resume = {"epochs_done": 4, "planned_epochs": 12}
    clock = _epoch_clock(TrainConfig(epochs=25), resume, records, splits)
    assert (clock.epochs, clock.done, clock.tail_factor) == (12, 4, 2.0)
    assert clock.durations == [r["seconds"] for r in records]
    fake = FakeClock()
    clock._clock = fake  # the rest of the run on the fake clock
    clock._lap = clock._last_step = fake.now
    assert max(_relative_errors(run, clock, fake)) <= 0.25


def test_no_estimate_until_the_first_epoch_has_some_pace():
    fake = FakeClock()
    clock = EpochClock(epochs=10, clock=fake)
    fake.now += 5
    assert clock.seconds_left(0.01) is None
    fake.now += 5
    assert clock.seconds_left(0.5) == pytest.approx(10 / 0.5 * 9.5)
