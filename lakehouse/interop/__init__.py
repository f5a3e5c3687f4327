"""Interoperability: FHIR R4 export and import, and what other Delta clients need."""
