"""The labels and annotations an SLO's series and alerts carry.

Both the generated Prometheus rules and the built-in watcher take them from here, so an alert
looks the same to the rest of warroom (runbook matching, grouping, fingerprints) whichever of the
two raised it.
"""

from __future__ import annotations

from bot.slo.spec import SLO
from bot.slo.windows import conditions_for, factor_text

# What Alertmanager should group by: page and ticket alerts of one SLO must land in separate
# groups (they share an alertname), hence sloth_severity.
GROUP_BY = ("alertname", "sloth_service", "sloth_slo", "sloth_severity")


def series_labels(slo: SLO) -> dict[str, str]:
    """Labels on every recording rule of ``slo`` (Sloth's ids plus warroom's short names)."""
    return {
        **slo.labels,
        "sloth_id": slo.id,
        "sloth_service": slo.service,
        "sloth_slo": slo.name,
        "service": slo.service,
        "slo": slo.name,
    }


def alert_labels(slo: SLO, severity: str) -> dict[str, str]:
    """The full label set of a burn alert as Prometheus would send it (without query by-labels)."""
    return {"alertname": slo.alertname, **series_labels(slo), "sloth_severity": severity}


def alert_annotations(slo: SLO, severity: str, burn_rate: str) -> dict[str, str]:
    """``burn_rate`` is the measured burn rate as text: ``23.5``, or a template such as
    ``{{ printf "%.1f" $value }}``; the summary names the thresholds it was measured against."""
    annotations = {
        "title": f"({severity}) {slo.service} {slo.name} SLO error budget burn rate is too fast.",
        "summary": (
            f"{slo.service} {slo.name}: error budget burning {burn_rate}× "
            f"({severity} threshold {thresholds(slo, severity)}; objective {slo.objective:g} % over {slo.period})."
        ),
        "burn_rate": burn_rate,
    }
    if slo.description:
        annotations["description"] = slo.description
    if slo.runbook:
        annotations["runbook"] = slo.runbook
    return annotations


def thresholds(slo: SLO, severity: str) -> str:
    """"14.4× over 1h and 5m, or 6× over 6h and 30m": the pairs of windows a severity fires on."""
    return ", or ".join(f"{factor_text(c.factor(slo.period))}× over {c.long} and {c.short}"
                        for c in conditions_for(severity))
