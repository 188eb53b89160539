"""What Lightning and torch print that asks nothing of the user, kept off every command's output; the warnings
that ask the user to act are kept."""

from __future__ import annotations

import logging
import re
import warnings

# Batches are slices of in-memory tensors, so worker processes only add overhead: silence the advice.
warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
# a training set of fewer batches than log_every_n_steps logs every epoch's worth of steps instead (LogEveryEpoch)
warnings.filterwarnings("ignore", message=r".*is smaller than the logging interval.*")
# Lightning's own code calling a deprecated torch API: nothing a user can act on
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")


class LightningNoise(logging.Filter):
    """Drops Lightning's lines that ask nothing of the user (which accelerators exist, an advert for a logging
    service, that a run stopped after its last epoch, which the last epoch's own line shows)."""

    NOISE = re.compile(
        r"^(GPU available: |TPU available: |HPU available: |💡 Tip: |`Trainer\.fit` stopped: `max_epochs)"
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.NOISE.search(record.getMessage())


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(LightningNoise())
