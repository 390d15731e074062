"""Every detector by name: a new one is one module (or one object in its family's module)
and one line here.

Text detectors read normalised text; the last two need the run's context (its participants'
identifiers, its content) and are run by the scan itself.
"""

from __future__ import annotations

from pipelines.rules.detectors import contact, financial, language, location, network, secrets
from pipelines.rules.detectors.detector import TextDetector

__all__ = ["CONTEXT_DETECTORS", "DETECTORS", "REDACTION_DETECTORS", "TEXT_DETECTORS"]

TEXT_DETECTORS: dict[str, TextDetector] = {
    detector.name: detector
    for detector in (
        contact.EMAIL,
        contact.PHONE,
        network.IP_ADDRESS,
        secrets.SECRET_URL,
        financial.PAYMENT_CARD,
        secrets.BLOB,
        language.NATURAL_LANGUAGE,
        financial.IBAN,
        network.MAC_ADDRESS,
        location.COORDINATES,
        secrets.API_KEY,
        secrets.CREDENTIAL,
    )
}
CONTEXT_DETECTORS: tuple[str, ...] = ("known_identifier", "content_echo")
# Every detector the service scan knows, in report order.
DETECTORS: tuple[str, ...] = (*TEXT_DETECTORS, *CONTEXT_DETECTORS)

# What is redacted from consented content (rules/consented.py): the personal-data and secret
# families, plus the value-level secret finders that would flag too much service telemetry
# (every URL parameter, every UUID) but cost a consented text only an id.
REDACTION_DETECTORS: dict[str, TextDetector] = {
    name: detector
    for name, detector in {
        **TEXT_DETECTORS,
        "token": secrets.TOKEN,
        "opaque_id": secrets.OPAQUE_ID,
    }.items()
    if name not in ("blob", "natural_language")
}
