"""Monitoring: what the API writes per request and what the scheduled monitor computes per window.

Modules:
    detectors    drift statistics on binned counts (PSI, Jensen-Shannon distance, chi-square,
                 L-infinity) and window-size-aware decisions
    metrics      metric names and the per-request values (service and input health)
    capture      sampled request/response records and feedback records as single JSON log lines
    window       reading captured records and feedback for a time window; joining them
    performance  the live value of the manifest's evaluation metric from joined feedback
    monitor      one monitoring run: drift per feature and for the output, live performance

Nothing here imports Powertools or boto3 at module level: handlers pass clients in.
"""
