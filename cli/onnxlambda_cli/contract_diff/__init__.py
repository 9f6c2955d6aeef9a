"""What changed between two model manifests, from the caller's side, and the version bump it needs.

Every difference between two manifests (files, model directories, or a deployed version's
`GET /model`) is classified by what it does to the people calling the service:

    breaking     a request that worked may now be refused, or an answer reads differently:
                 feature removed, new feature (every key is required, see below), dtype changed,
                 range narrowed, category removed, nullable -> required, extra fields refused,
                 a V2 input tensor added/removed/re-laid-out, output kind, label set or order,
                 output names or unit changed, model renamed                     -> major bump
    compatible   every request that worked still works, and more may: range widened, category
                 added, required -> nullable, extra fields ignored, a new probability output;
                 or the evidence about the model changed: metrics, baselines   -> minor bump
    model        the contract is the same but the answers may differ: model.onnx bytes
                 (weights-only), the token a null string is fed as, the output's internal
                 encoding (ZipMap vs tensor, class values)                        -> patch bump
    metadata     descriptions, provenance (lineage, training data fingerprint and sizes,
                 library versions), golden tolerances, orders nobody sees: the same bytes
                 answer the same contract the same way, so no bump is needed      -> none

A version names what callers get (every response carries it with the model's sha256): the
contract and the answers. Provenance alone does not change either (re-importing the same export
and data with another tool writes another lineage and fingerprint); if the reference data really
changed, the baselines and metrics say so, and they are compatible changes.

One rule differs from the usual "an optional field is compatible": this service requires every
feature key in every row (`/predict` answers 422 `missing_feature` for an absent key, even a
nullable one - callers send `null` for unknown - and V2 needs every input tensor), so a new
feature is breaking even when it is nullable. The tests check each classification against the
validator itself: a "compatible" change accepts every request the old contract accepted.

Pure functions over JSON (no onnxruntime, no boto3): the CLI (`onnxlambda diff`) and the release
path use them, and the pre-traffic hook could.

    contract.py         what is compared (Contract, read strictly) and a Change's levels and bumps
    request_changes.py  the request side: model identity, features, V2 input tensors
    answer_changes.py   the answer side: outputs, metrics, baselines, provenance
    verdict.py          `diff`: every change, the bump it needs, the verdict line and table
"""

from onnxlambda_cli.contract_diff.contract import BUMP_OF, LEVELS, Bump, Change, Contract, Level
from onnxlambda_cli.contract_diff.verdict import (
    ContractDiff,
    diff,
    format_table,
    next_version,
    parse_version,
    version_bump,
)

__all__ = [
    "BUMP_OF",
    "LEVELS",
    "Bump",
    "Change",
    "Contract",
    "ContractDiff",
    "Level",
    "diff",
    "format_table",
    "next_version",
    "parse_version",
    "version_bump",
]
