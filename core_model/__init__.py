"""Endo-FM in pure PyTorch: model, checkpoints, video decoding, data, pretraining, fine-tuning, inference.

Never imports Qt, SQLAlchemy or the ``endoreview`` app (checked by import-linter).
"""

__version__ = "0.1.0"
