"""Every environment variable the functions read, in one table: name, type, default, meaning.

The project's own variables carry the `ONNXLAMBDA_` prefix; the table also lists what Powertools
and the Lambda runtime set, because operators meet them in the same place. Each setting is read
through one parser (`get`), which names the variable when a value does not parse; the settings
objects of each part (`Settings` here, BatchConfig, S3ClientSettings, CaptureSettings,
MonitorSettings) build themselves from it. `onnxlambda settings` renders the table as
docs/reference/settings.md, and tests/unit/infra checks that every variable template.yaml sets is
in it. (Anchor: MLServer's settings.py, one env prefix and a docstring per field.)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from onnxlambda.contract.redaction import parse_fields

PREFIX: Final = "ONNXLAMBDA_"
MB_PER_VCPU: Final = 1769  # Lambda allots CPU in proportion to memory: one full vCPU at 1,769 MB


def _int(raw: str) -> int:
    return int(raw)


def _float(raw: str) -> float:
    return float(raw)


def _text(raw: str) -> str:
    return raw


def _flag(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"true", "1", "yes", "on"}:
        return True
    if lowered in {"false", "0", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def _rate(raw: str) -> float:
    rate = float(raw)
    if not 0.0 <= rate <= 1.0:
        raise ValueError("expected a share within [0, 1]")
    return rate


def _threads(raw: str) -> int | str:
    raw = raw.strip()
    if raw == "auto":
        return raw
    count = int(raw)
    if count < 1:
        raise ValueError("expected a positive count or auto")
    return count


KINDS: Final[dict[str, Callable[[str], Any]]] = {
    "int": _int,
    "float": _float,
    "text": _text,
    "path": Path,
    "flag": _flag,
    "fields": parse_fields,
    "share": _rate,
    "threads": _threads,
}


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    kind: str  # a key of KINDS; "external" when another library reads it
    default: object
    meaning: str
    used_by: str  # which functions read it: api, batch, monitor, pretraffic, or a library
    blank_is_default: bool = True  # False: set but empty means "none" (e.g. no id column)

    def parse(self, raw: str) -> Any:
        return KINDS[self.kind](raw)


def _own(name: str, kind: str, default: object, meaning: str, used_by: str) -> Setting:
    return Setting(PREFIX + name, kind, default, meaning, used_by)


CATALOGUE: Final[tuple[Setting, ...]] = (
    # -- the model and its contract ----------------------------------------------------------
    _own("MODEL_DIR", "path", Path("/opt/model"), "The model directory (manifest, model.onnx, golden set); the model layer puts it at /opt/model.", "api, batch, monitor, pretraffic"),
    _own("MAX_ROWS", "int", 1000, "Rows one request may carry (/predict instances, V2 N); more is 413 too_many_rows.", "api"),
    _own("MAX_BODY_BYTES", "int", 1_048_576, "Request body size refused with 413 before any parsing (API Gateway and synchronous Lambda allow 6 MB).", "api"),
    _own("MAX_ERROR_DETAILS", "int", 100, "Field-level problems listed in one error body; the rest are counted (truncated: true).", "api"),
    _own("REDACT_FIELDS", "fields", frozenset(), "Comma-separated features whose values never leave the request: not in logs, error bodies, batch error files or captures.", "api, batch"),
    _own("ORT_INTRA_OP_THREADS", "threads", 1, "onnxruntime intra-op threads: a count, or auto for one per whole vCPU the memory size buys (1,769 MB each).", "api, batch"),
    # -- per-request monitoring ---------------------------------------------------------------
    _own("MONITORING_ENABLED", "flag", True, "Per-request metrics and data capture; false turns both off (the benchmark's baseline, a kill switch).", "api"),
    _own("CAPTURE_SAMPLE_RATE", "share", 0.0, "Share of answered rows written to the capture log stream (0 to 1).", "api"),
    _own("CAPTURE_REDACT_FIELDS", "fields", frozenset(), "Features kept out of the capture only (REDACT_FIELDS are never captured either).", "api"),
    # -- batch scoring --------------------------------------------------------------------------
    _own("BATCH_BUCKET", "text", "", "The batch bucket; events for any other bucket are refused (empty: any).", "batch"),
    _own("BATCH_INPUT_PREFIX", "text", "incoming/", "Objects scored when created under this prefix.", "batch"),
    _own("BATCH_OUTPUT_PREFIX", "text", "scored/", "Where scored files, error files and summaries go; must not overlap the input prefix.", "batch"),
    _own("BATCH_CHUNK_ROWS", "int", 10_000, "Rows read, validated, scored and written per chunk (memory is bounded by it).", "batch"),
    _own("BATCH_PART_BYTES", "int", 8 * 1024 * 1024, "Multipart upload part size (S3's minimum is 5 MiB).", "batch"),
    _own("BATCH_TIME_MARGIN_MS", "int", 20_000, "Stop this long before the Lambda timeout and write a failed summary instead of being killed.", "batch"),
    Setting(PREFIX + "BATCH_ID_COLUMN", "text", "id", "A column carried through to the scored file as the row id (set but empty: none).", "batch", blank_is_default=False),
    _own("BATCH_MAX_BYTES", "int", 0, "Objects larger than this fail at once as too_large (0: no limit).", "batch"),
    _own("BATCH_MAX_TEXT_CELL_CHARS", "int", 10_000, "Longest text cell that may hold a line break; a quote running further is a bad row, not a record.", "batch"),
    _own("BATCH_STATE_MACHINE_ARN", "text", "", "The large-object state machine; objects of at least BATCH_DISTRIBUTED_MIN_BYTES start it (empty: never).", "batch"),
    _own("BATCH_DISTRIBUTED_MIN_BYTES", "int", 0, "Objects at least this large are scored in byte ranges on Step Functions Distributed Map (0: never).", "batch"),
    _own("BATCH_WORK_PREFIX", "text", "work/", "Where the large-object path keeps its plan and parts; overlaps neither the input nor the output prefix.", "batch"),
    _own("BATCH_RANGE_BYTES", "int", 64 * 1024 * 1024, "Target bytes per range (one child workflow each); cuts fall on the next chunk boundary.", "batch"),
    _own("BATCH_MAX_CONCURRENCY", "int", 20, "Ranges scored at once by one Distributed Map run.", "batch"),
    _own("BATCH_TOLERATED_FAILURE_PERCENTAGE", "float", 0.0, "Share of ranges (percent) that may fail for good before the run fails; their rows land in errors.jsonl.", "batch"),
    _own("BATCH_S3_RETRY_MODE", "text", "standard", "botocore retry mode of the batch S3 client: standard or adaptive.", "batch"),
    _own("BATCH_S3_MAX_ATTEMPTS", "int", 5, "Total attempts per S3 call, the first included.", "batch"),
    _own("BATCH_S3_CONNECT_TIMEOUT_S", "float", 5.0, "S3 connect timeout, seconds.", "batch"),
    _own("BATCH_S3_READ_TIMEOUT_S", "float", 60.0, "S3 read timeout, seconds.", "batch"),
    # -- the monitor ------------------------------------------------------------------------------
    _own("CAPTURE_BUCKET", "text", "", "Where captured rows and feedback land, and the monitor's summaries go.", "monitor"),
    _own("CAPTURE_PREFIX", "text", "capture/", "Prefix of the captured records.", "monitor"),
    _own("SUMMARY_PREFIX", "text", "monitor/", "Prefix of the monitor's window summaries.", "monitor"),
    _own("WINDOW_MINUTES", "int", 60, "Length of the window each monitor run judges.", "monitor"),
    _own("DELIVERY_DELAY_MINUTES", "int", 20, "How far the window ends before now (Firehose buffers before it writes).", "monitor"),
    _own("LABEL_LOOKBACK_HOURS", "int", 24, "How far back feedback is joined with captured predictions.", "monitor"),
    _own("MIN_SAMPLES", "int", 100, "Rows a window needs before drift is judged (fixed PSI thresholds need a minimum count).", "monitor"),
    _own("MIN_FEEDBACK", "int", 50, "Joined outcomes needed before live performance is reported.", "monitor"),
    _own("DRIFT_FAMILY_ALPHA", "float", 0.01, "False-alarm rate of one window's drift decisions, split across features (Bonferroni).", "monitor"),
    # -- releases -----------------------------------------------------------------------------------
    _own("TARGET_FUNCTION_VERSION", "text", "", "The version the pre-traffic hook checks (set by CodeDeploy's hook wiring in the template).", "pretraffic"),
    _own("EXPECTED_MODEL_SHA256", "text", "", "The model sha256 the new version must serve (the build's stamp).", "pretraffic"),
    _own("REPLAY_ROWS", "int", 0, "Newest captured rows the pre-traffic hook replays through the new model (0: no replay).", "pretraffic"),
    _own("REPLAY_LOOKBACK_HOURS", "float", 24.0, "How far back the hook's replay reads capture.", "pretraffic"),
    _own("REPLAY_MIN_ROWS", "int", 20, "Fewer captured rows than this: the replay is skipped, not failed (no capture yet).", "pretraffic"),
    _own("REPLAY_MAX_OBJECTS", "int", 200, "Capture objects the replay reads at most.", "pretraffic"),
    _own("REPLAY_MAX_REFUSED_SHARE", "share", 0.0, "Share of replayed rows the new contract may refuse before the gate fails.", "pretraffic"),
    _own("REPLAY_MIN_AGREEMENT", "share", 0.95, "Label agreement (or values within tolerance) the new model must reach on replayed rows.", "pretraffic"),
    _own("REPLAY_MAX_OUTPUT_PSI", "float", 0.1, "Output drift (PSI) between the two models above which the gate fails.", "pretraffic"),
    _own("SHADOW_SAMPLE_RATE", "share", 0.0, "Share of answered rows the shadow challenger also scores (0: off, nothing loaded).", "api"),
    _own("CHALLENGER_DIR", "path", Path("/opt/challenger"), "The challenger model directory (the challenger layer on Lambda).", "api"),
    _own("SHADOW_BUDGET_MS", "float", 5.0, "Most time the shadow may add to one request, judged from its measured per-row cost.", "api"),
    _own("SHADOW_MAX_ROWS", "int", 100, "Most rows the challenger scores per request.", "api"),
    _own("SHADOW_VALUE_TOLERANCE", "float", None, "Regression: |challenger - champion| above this disagrees (default: a tenth of the output's baseline std_dev).", "api"),
    _own("RELEASE_MODEL_VERSION", "text", "", "The model version the build was stamped with (read by `onnxlambda release status`).", "api (read by tools)"),
    _own("RELEASE_MODEL_SHA256", "text", "", "The model sha256 the build was stamped with.", "api (read by tools)"),
    _own("RELEASE_CODE_REVISION", "text", "", "The git revision the build was stamped with.", "api (read by tools)"),
    # -- read by Powertools and the Lambda runtime, listed for operators ----------------------
    Setting("POWERTOOLS_SERVICE_NAME", "external", "", "Metric dimension and log key: the stack name, so stacks in one account never share a metric.", "Powertools"),
    Setting("POWERTOOLS_METRICS_NAMESPACE", "external", "", "CloudWatch namespace of every metric (OnnxLambda).", "Powertools"),
    Setting("POWERTOOLS_LOG_LEVEL", "external", "INFO", "Log level (template parameter LogLevel).", "Powertools"),
    Setting("POWERTOOLS_TRACE_DISABLED", "external", "true", "X-Ray SDK tracing off (the default: no SDK import at cold start; Lambda's own tracing stays on).", "Powertools, serving/tracing.py"),
    Setting("AWS_LAMBDA_FUNCTION_VERSION", "external", "local", "The function version answering, in every response and log line.", "Lambda runtime"),
    Setting("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "external", 1024, "Memory size, for ORT_INTRA_OP_THREADS=auto.", "Lambda runtime"),
    Setting("LAMBDA_TASK_ROOT", "external", "", "Set only on Lambda: SDK tracing is never on elsewhere.", "Lambda runtime"),
    Setting("AWS_SAM_LOCAL", "external", "", "Set by `sam local`: no SDK tracing there (Powertools' rule).", "sam local"),
    Setting("AWS_CHALICE_CLI_MODE", "external", "", "Set by Chalice's local mode: no SDK tracing there (Powertools' rule).", "Chalice"),
)  # fmt: skip
BY_NAME: Final = {s.name: s for s in CATALOGUE}


class SettingError(ValueError):
    """A variable whose value does not parse: names the variable, the value and what is expected."""


def get(name: str, env: Mapping[str, str] | None = None) -> Any:
    """The value of one catalogued variable (with the project prefix added when missing)."""
    setting = BY_NAME.get(name) or BY_NAME[PREFIX + name]
    environ = os.environ if env is None else env
    raw = environ.get(setting.name, "")
    if not raw.strip():
        return setting.default if setting.blank_is_default or setting.name not in environ else ""
    if setting.kind == "external":
        return raw
    try:
        return setting.parse(raw)
    except ValueError as exc:
        raise SettingError(f"{setting.name}={raw!r}: {exc} ({setting.meaning})") from None


def ort_threads(value: int | str, memory_mb: int) -> int:
    """ONNXLAMBDA_ORT_INTRA_OP_THREADS: a count, or `auto` for one per whole vCPU the memory buys."""
    if value == "auto":
        return max(1, memory_mb // MB_PER_VCPU)
    return int(value)


@dataclass(frozen=True, slots=True)
class Settings:
    """What serving a model needs: where it is, request limits, threads, redaction."""

    model_dir: Path
    max_rows: int
    max_body_bytes: int
    max_error_details: int
    ort_intra_op_threads: int
    redact_fields: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        memory = int(get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", env))
        return cls(
            model_dir=get("MODEL_DIR", env),
            max_rows=get("MAX_ROWS", env),
            max_body_bytes=get("MAX_BODY_BYTES", env),
            max_error_details=get("MAX_ERROR_DETAILS", env),
            ort_intra_op_threads=ort_threads(get("ORT_INTRA_OP_THREADS", env), memory),
            redact_fields=get("REDACT_FIELDS", env),
        )


def reference() -> str:
    """docs/reference/settings.md: the table above, for people."""
    lines = [
        "# Settings reference",
        "",
        "Generated from `layers/core/onnxlambda/settings.py` by `onnxlambda settings`; do not edit.",
        "Every variable the functions read. The project's own carry the `ONNXLAMBDA_` prefix; the",
        "template sets them from its parameters (template.yaml Globals and each function).",
        "",
        "| variable | type | default | read by | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for s in CATALOGUE:
        default = sorted(s.default) if isinstance(s.default, frozenset) else s.default
        shown = "" if default in ("", [], None) else f"`{default}`"
        lines.append(f"| `{s.name}` | {s.kind} | {shown} | {s.used_by} | {s.meaning} |")
    return "\n".join(lines) + "\n"


__all__ = [
    "BY_NAME",
    "CATALOGUE",
    "PREFIX",
    "Setting",
    "SettingError",
    "Settings",
    "get",
    "ort_threads",
    "reference",
]
