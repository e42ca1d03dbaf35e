"""Time left in a training run, from how long its whole epochs really took.

A per-batch pace swings: the first batches warm up, validation pauses the batches at the end
of every epoch, and a checkpoint is written after it. So the estimate prices each epoch left at
the typical wall time of the epochs measured so far (batches, validation and checkpoint
together), and the epoch under way at its fraction still to do. Before the first epoch ends
there is nothing whole to go by, and the pace within that epoch is the best guess.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

# The typical epoch is the median of the latest ones: one slow epoch (a busy machine, a
# storage hiccup) does not swing it, and a run that speeds up or slows down is followed.
RECENT_EPOCHS = 5
# Under this share of the first epoch, its pace says too little to print a time.
MIN_FIRST_EPOCH_FRACTION = 0.05


class EpochClock:
    """Measures whole epochs and says how many seconds the run has left.

    ``epochs`` is the number the run will train in all (as planned: a time budget may lower
    it after the first epoch, see ``plan``); ``epochs_done`` and ``durations`` carry over
    what a resumed run already measured. ``tail_factor`` prices the final check after
    training, in validation passes (the test set with mirrored images is about two).
    """

    def __init__(
        self,
        *,
        epochs: int,
        epochs_done: int = 0,
        durations: Sequence[float] = (),
        tail_factor: float = 0.0,
        budget_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.epochs, self.done = epochs, epochs_done
        self.durations = [float(d) for d in durations if d and d > 0]
        self.validation: list[float] = []
        self.tail_factor = tail_factor
        self._clock = clock
        self._started = self._lap = self._last_step = clock()
        self._deadline = None if budget_seconds is None else self._started + budget_seconds

    def plan(self, epochs: int) -> None:
        """The run will train ``epochs`` in all (a time budget shortened it)."""
        self.epochs = epochs

    def step(self) -> None:
        """A batch finished: what follows it up to the epoch's end is validation."""
        self._last_step = self._clock()

    def epoch_end(self, epoch: int) -> float:
        """Epoch ``epoch`` ended (validated, checkpoint written); returns its wall time."""
        now = self._clock()
        seconds = now - self._lap
        self.durations.append(seconds)
        self.validation.append(max(0.0, now - self._last_step))
        self._lap, self.done = now, epoch
        return seconds

    def typical_epoch(self) -> float | None:
        """Seconds of a typical whole epoch, or None before one has ended."""
        if not self.durations:
            return None
        return statistics.median(self.durations[-RECENT_EPOCHS:])

    def final_check_seconds(self) -> float:
        """The expected time of the check after training (test set, heatmaps, saving)."""
        if not self.validation:
            return 0.0
        return self.tail_factor * statistics.median(self.validation[-RECENT_EPOCHS:])

    def seconds_left(self, within: float) -> float | None:
        """Seconds until the run ends, ``within`` (0..1) of the current epoch's batches done."""
        within = min(max(within, 0.0), 1.0)
        elapsed = self._clock() - self._lap  # in the epoch under way
        per_epoch = self.typical_epoch()
        if per_epoch is None:
            if within < MIN_FIRST_EPOCH_FRACTION:
                return None
            batches, validation = elapsed / within, 0.0
        else:
            # A resumed run knows its earlier epochs' times, not their validation's.
            recent = self.validation[-RECENT_EPOCHS:]
            validation = statistics.median(recent) if recent else 0.0
            batches = max(0.0, per_epoch - validation)
        epochs_left = max(0, self.epochs - self.done)
        if not epochs_left:
            return self._capped(self.final_check_seconds())
        # What is left of the epoch under way, then whole epochs, each with its validation.
        training = batches * (epochs_left - within) + validation * epochs_left
        return self._capped(training + self.final_check_seconds())

    def _capped(self, left: float) -> float:
        if self._deadline is not None:
            # The recipe stops at its time budget whatever the estimate says.
            left = min(left, max(0.0, self._deadline - self._clock()) + self.final_check_seconds())
        return max(0.0, left)
