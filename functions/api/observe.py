"""Per-request monitoring for the API function, every protocol alike: service and input-health
metrics, data capture.

The data plane calls `observer.predicted` for every answered request (/predict and V2); the
routes call `observer.refused` for every refused one. Metric names and values come from the core
(onnxlambda.monitoring.metrics); this module only hands them to Powertools Metrics, which shares
its metric set across instances, so app.py's `log_metrics` flushes them in the same EMF line.
ONNXLAMBDA_MONITORING_ENABLED=false turns both this and the capture off (the benchmark's baseline, and a
kill switch).

Shadow challenger (onnxlambda.release.shadow): with ONNXLAMBDA_SHADOW_SAMPLE_RATE > 0 and a
challenger model in ONNXLAMBDA_CHALLENGER_DIR, sampled rows are also scored by the challenger
after the champion answered; its answer rides in the row's capture record, and its counts go out
as Shadow* metrics. It never changes a response.

An invoke of a numbered version (`...:function:<name>:7`) is not production traffic: API Gateway
calls the `live` alias, the pre-traffic hook calls the new version directly with its golden set.
Those invokes record no metric and capture nothing, so the stack's alarms and drift windows count
callers only.
"""

import numpy as np
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from onnxlambda import settings
from onnxlambda.contract.errors import ServingError
from onnxlambda.monitoring import metrics as names
from onnxlambda.monitoring.capture import Capturer, CaptureSettings
from onnxlambda.release.shadow import Challenger, ShadowSettings, load_challenger, pick
from onnxlambda.serving.dataplane import Decoded, Inference
from onnxlambda.serving.service import Service

metrics = Metrics()
_UNITS = {"Count": MetricUnit.Count, "Milliseconds": MetricUnit.Milliseconds, "None": MetricUnit.NoUnit}


class Observer:
    def __init__(self, enabled: bool, capture: CaptureSettings, shadow: ShadowSettings | None = None) -> None:
        self.enabled = enabled
        self.capture_settings = capture
        self.direct = False  # this invocation named a numbered version (the pre-traffic hook)
        self._capturer: Capturer | None = None
        self.shadow_settings = shadow or ShadowSettings()
        self.challenger: Challenger | None = None
        self._rng = np.random.default_rng()

    def prepare(self, service: Service) -> dict[str, str]:
        """Once per execution environment, after the model loaded: load the shadow challenger.
        Returns what to log: the challenger's identity, or why there is none."""
        self.challenger, why = load_challenger(self.shadow_settings, service.manifest)
        if self.challenger is None:
            return {"shadow": "off", "reason": why or ""}
        return {"shadow": "on", **{f"challenger_{k}": v for k, v in self.challenger.identity.items()}}

    def begin(self, invoked_function_arn: str) -> None:
        """Once per invocation, before anything is recorded: was this a direct version invoke?"""
        # invoked_function_arn "Indicates if the invoker specified a version number or alias"
        # (docs.aws.amazon.com/lambda/latest/dg/python-context.html): arn:...:function:name[:qualifier]
        parts = invoked_function_arn.split(":")
        self.direct = len(parts) > 7 and parts[7].isdigit()

    @property
    def active(self) -> bool:
        return self.enabled and not self.direct

    def record(self, values: names.MetricValues) -> None:
        for name, (unit, value) in values.items():
            metrics.add_metric(name=name, unit=_UNITS[unit], value=value)

    def invoked(self, service: Service | None) -> None:
        """Once per invocation: the request count, and the model identity as EMF metadata."""
        if not self.active:
            return
        metrics.add_metric(name=names.REQUESTS, unit=MetricUnit.Count, value=1)
        if service is not None:
            metrics.add_metadata(key="model_version", value=service.manifest.version)
            metrics.add_metadata(key="model_sha256", value=service.manifest.sha256)

    def predicted(self, inference: Inference, request: Decoded) -> None:
        if not self.active:
            return
        self.record(names.prediction_metrics(inference))
        rate = self.capture_settings.sample_rate
        challenger = self.challenger
        picked: list[int] | None = None
        extra = None
        if challenger is not None:
            picked, shadowed = pick(inference.rows, rate, self.shadow_settings.sample_rate, self._rng)
            outcome = challenger.score(inference, request, shadowed)
            self.record(outcome.metrics())
            extra = outcome.per_row
        if rate > 0:
            if self._capturer is None:
                self._capturer = Capturer(inference.manifest, self.capture_settings)
            captured = self._capturer.capture(inference, request, picked=picked, extra=extra)
            if captured:  # a Sum needs no zeros, and each metric costs Powertools work
                metrics.add_metric(name=names.CAPTURED_ROWS, unit=MetricUnit.Count, value=captured)

    def refused(self, err: ServingError) -> None:
        if self.active:
            self.record(names.rejection_metrics(err))

    def internal_error(self) -> None:
        if self.direct:  # the hook reports a failing version to CodeDeploy; it must not page
            return
        metrics.add_metric(name=names.INTERNAL_ERRORS, unit=MetricUnit.Count, value=1)


observer = Observer(
    enabled=settings.get("ONNXLAMBDA_MONITORING_ENABLED"),
    capture=CaptureSettings.from_env(),
    shadow=ShadowSettings.from_env(),
)
