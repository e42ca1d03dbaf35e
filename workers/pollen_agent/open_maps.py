"""The agent's open maps: values whose keys the contract does not fix, each named once with why.

Everything that crosses to the hub is a ``pollen_contracts`` type; these stay inside the agent
(or travel inside a contract field documented as open).
"""

from __future__ import annotations

from typing import Any

# A torch state dict or training checkpoint: tensors and optimiser state by name, in torch's own
# format (saved and loaded with weights_only=True, so it holds plain values and tensors only).
TorchState = dict[str, Any]

# Metrics from ``ml.metrics`` and the recipe: which ones (with intervals, curves, counts) depends
# on the task and the number of labels, so the hub stores and shows them as they are.
Metrics = dict[str, Any]

# A record as JSON before it is checked against its contract type (an epoch record kept in a
# checkpoint and in the outbox, a progress report being assembled, a row the hub listed).
JsonRecord = dict[str, Any]
