"""The ``transformers`` backend: a Hugging Face model id or local directory, run in-process.

:mod:`.backend` streams, :mod:`.loading` loads (and quantizes), :mod:`.prompts` turns
conversations into ids, :mod:`.generation` runs ``generate``. torch and transformers are
imported only when the model loads (``pip install 'mixchat[transformers]'``).
"""

from mixchat.backends.transformers.backend import TransformersBackend

__all__ = ["TransformersBackend"]
