"""Families of prompts: proposed from the graphs themselves (:mod:`kb.families.proposals`), then
accepted or edited by a person (:mod:`kb.families.membership`)."""

from kb.families.membership import (
    Family,
    FamilyChange,
    Move,
    accept_proposal,
    add_to_family,
    clear_family,
    list_families,
    remove_from_family,
    rename_family,
)
from kb.families.proposals import FamilyProposal, FamilyProposals, KeptApart, PairEvidence, propose_families

__all__ = [
    "Family", "FamilyChange", "FamilyProposal", "FamilyProposals", "KeptApart", "Move", "PairEvidence", "accept_proposal",
    "add_to_family", "clear_family", "list_families", "propose_families", "remove_from_family", "rename_family",
]
