"""Diagnosis: what failures mean and what to do about them (the knowledge base in `knowledge`).

Builds on `sipwatch.model` and `sipwatch.sip.codes`; the reports import it, never the other way round.
"""

from sipwatch.diagnosis.knowledge import (
    CATEGORY_DESCRIPTIONS,
    SEED_TERMS,
    Category,
    Knowledge,
    all_entries,
    categories_markdown,
    for_finding,
    for_q850,
    for_status,
    knowledge,
    knowledge_markdown,
    parse_key,
)

__all__ = [
    "CATEGORY_DESCRIPTIONS",
    "SEED_TERMS",
    "Category",
    "Knowledge",
    "all_entries",
    "categories_markdown",
    "for_finding",
    "for_q850",
    "for_status",
    "knowledge",
    "knowledge_markdown",
    "parse_key",
]
