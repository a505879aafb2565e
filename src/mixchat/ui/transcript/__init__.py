"""The chat transcript as one browser component (see :mod:`.component`)."""

from mixchat.ui.transcript.component import Entry, Op, StepView, Transcript

__all__ = ["Entry", "Op", "StepView", "Transcript"]
