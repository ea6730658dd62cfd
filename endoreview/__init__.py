"""EndoReview: review, correct and fine-tune Endo-FM predictions on endoscopy video.

Research use only, not a medical device. Importing this package must not import torch.
"""

__version__ = "0.1.0"

RESEARCH_NOTICE = "Research use only — not a medical device. Model output must not be used for diagnosis."
