"""Kubernetes admission with regward's policy: validating and mutating webhooks, deployment
records, and a Gatekeeper external data provider.

The gate serves `validate` at `POST /admission/validate`, `mutate` at `POST /admission/mutate`
and `provider` at `POST /gatekeeper/provider`, through `AdmissionEndpoints`, and passes an
`ImageDecider` built on its own decider.
"""

from __future__ import annotations

from regward.admission.asgi import AdmissionEndpoints
from regward.admission.config import AdmissionSettings, FailureMode, parse_admission_settings
from regward.admission.gatekeeper import provider
from regward.admission.interface import (
    AdmissionConfigError,
    AdmissionError,
    ImageDecider,
    ImageVerdict,
    MalformedReviewError,
    NamespaceLabelLookup,
    RecordsError,
)
from regward.admission.review import MAX_REVIEW_BYTES, mutate, validate

__all__ = [
    "MAX_REVIEW_BYTES",
    "AdmissionConfigError",
    "AdmissionEndpoints",
    "AdmissionError",
    "AdmissionSettings",
    "FailureMode",
    "ImageDecider",
    "ImageVerdict",
    "MalformedReviewError",
    "NamespaceLabelLookup",
    "RecordsError",
    "mutate",
    "parse_admission_settings",
    "provider",
    "validate",
]
