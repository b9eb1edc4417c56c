"""pytest set-up shared by the test suite (tests/) and the docstring examples (skmll/)."""

import os

# Everything runs offline: models and data come from installed packages, never a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("KERAS_BACKEND", "torch")
