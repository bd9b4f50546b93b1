"""Comprehensive SR, TID 1500 Measurement Report: per finding one probability and one present/absent.

Each finding is its own measurement group (TID 1501) so that it can carry its own finding site: the
anatomy the service ranked highest for that finding. The probability is the service's score verbatim.
A present/absent evaluation is added only for findings the service marks `calibrated` (a threshold
validated on held-out data): a PACS viewer shows "Present" prominently, and an untested default
threshold must not be dressed up as a verdict.
"""

from __future__ import annotations

from typing import Any

import highdicom as hd
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from app.bridge.results.context import SERIES_NUMBERS, ResultContext, vocabulary_code

PROBABILITY = hd.sr.CodedConcept(
    value="MSPROB", scheme_designator="99MEDSLIP", meaning="Probability of presence"
)
PLAIN_CHEST_XRAY = Code("399208008", "SCT", "Plain chest X-ray")


def best_anatomy(finding: dict[str, Any]) -> str | None:
    """Name of the highest-scoring anatomy the service attached to a finding, if any."""
    anatomy = finding.get("anatomy") or []
    if not anatomy:
        return None
    top = max(anatomy, key=lambda item: float(item.get("score", 0.0)))
    return str(top["name"])


def finding_sites(classify: dict[str, Any], ground: dict[str, Any]) -> dict[str, str]:
    """finding name -> best anatomy, preferring /ground (it localises) over /classify."""
    sites: dict[str, str] = {}
    for response in (classify, ground):  # later wins
        for finding in response.get("findings", []):
            site = best_anatomy(finding)
            if site is not None:
                sites[str(finding["name"])] = site
    return sites


def build_sr(ctx: ResultContext, classify: dict[str, Any], ground: dict[str, Any]) -> hd.sr.ComprehensiveSR:
    """TID 1500 report on one source image from the /classify (+ /ground) answers."""
    algorithm = hd.sr.AlgorithmIdentification(name=ctx.model_name, version=ctx.model_version)
    sites = finding_sites(classify, ground)
    source_image = hd.sr.SourceImageForMeasurementGroup.from_source_image(ctx.source)
    groups = []
    for finding in classify.get("findings", []):
        name = str(finding["name"])
        finding_code = vocabulary_code(name)
        site = sites.get(name)
        evaluations = None
        # services that predate the field sent no `calibrated`: keep their present/absent as before
        if bool(finding.get("calibrated", True)):
            presence = codes.SCT.Present if bool(finding.get("positive")) else codes.SCT.Absent
            evaluations = [hd.sr.QualitativeEvaluation(name=finding_code, value=presence)]
        groups.append(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=ctx.instance_uid("sr-group", name), identifier=f"MeDSLIP finding: {name}"[:64]
                ),
                finding_type=finding_code,
                algorithm_id=algorithm,
                finding_sites=[hd.sr.FindingSite(vocabulary_code(site))] if site else None,
                measurements=[
                    hd.sr.Measurement(
                        name=PROBABILITY,
                        value=float(finding["score"]),
                        unit=codes.UCUM.NoUnits,
                        algorithm_id=algorithm,
                    )
                ],
                qualitative_evaluations=evaluations,
                source_images=[source_image],
            )
        )
    observation_context = hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=ctx.instance_uid("observer-device"),
                name=ctx.model_name[:64],
                manufacturer_name=ctx.manufacturer,
                model_name=ctx.software_version,
            ),
        )
    )
    report = hd.sr.MeasurementReport(
        observation_context=observation_context,
        procedure_reported=PLAIN_CHEST_XRAY,
        imaging_measurements=groups,
        # highdicom's image-library entry for DX/CR needs ImagerPixelSpacing; without it the (mandatory)
        # library stays empty and the images are referenced from each group instead.
        referenced_images=[ctx.source] if "ImagerPixelSpacing" in ctx.source else None,
    )
    return hd.sr.ComprehensiveSR(
        evidence=[ctx.source],
        content=report,
        series_instance_uid=ctx.series_uid("sr"),
        series_number=SERIES_NUMBERS["sr"],
        sop_instance_uid=ctx.instance_uid("sr"),
        instance_number=ctx.instance_number,
        manufacturer=ctx.manufacturer,
        is_complete=True,
        series_description=f"AI findings ({ctx.software_version}), research use"[:64],
        software_versions=ctx.software_version,
    )
