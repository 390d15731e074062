"""Every detector by name: a new one is one module (or one object in its family's module)
and one line here.

Text detectors read normalised text; the last two need the run's context (its participants'
identifiers, its content) and are run by the scan itself.
"""

from __future__ import annotations

from pipelines.rules.detectors import contact, financial, language, location, network, secrets
from pipelines.rules.detectors.detector import TextDetector

__all__ = ["CONTEXT_DETECTORS", "DETECTORS", "TEXT_DETECTORS"]

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
