"""Shared test settings."""

from __future__ import annotations

import os

# Unit and integration tests never reach a model provider or AWS.
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
