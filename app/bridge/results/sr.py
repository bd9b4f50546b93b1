"""Comprehensive SR, TID 1500 Measurement Report: per finding one probability and one present/absent.

Each finding is its own measurement group (TID 1501) so that it can carry its own finding site: the
anatomy the service ranked highest for that finding. The probability is the service's score verbatim
(NUM "Probability", DCM 122157). Findings and sites are coded from the bridge's code table (SNOMED CT
first, see codes.py), so a viewer can find e.g. pneumothorax by SCT 36118008. A present/absent
evaluation is added only for findings the service marks `calibrated` (a threshold validated on
held-out data): a PACS viewer shows "Present" prominently, and an untested default threshold must not
be dressed up as a verdict.
"""

from __future__ import annotations

import highdicom as hd
import pydicom
from pydicom.sr.codedict import codes

from app.bridge.results.codes import (
    CHEST_IMAGING,
    PRIVATE_SCHEME,
    PRIVATE_SCHEME_NAME,
    PROBABILITY,
    anatomy_site,
    finding_code,
)
from app.bridge.results.context import SERIES_NUMBERS, ResultContext
from app.contract.http import ClassifyResponse, FindingScore, GroundedFinding, GroundResponse


def best_anatomy(finding: GroundedFinding) -> str | None:
    """Name of the highest-scoring anatomy the service attached to a finding, if any."""
    if not finding.anatomy:
        return None
    return max(finding.anatomy, key=lambda item: item.score).name


def finding_sites(ground: GroundResponse | None) -> dict[str, str]:
    """finding name -> best anatomy from /ground (the route that localises)."""
    sites: dict[str, str] = {}
    for finding in ground.findings if ground is not None else []:
        site = best_anatomy(finding)
        if site is not None:
            sites[finding.name] = site
    return sites


def _group(
    ctx: ResultContext,
    finding: FindingScore,
    site_name: str | None,
    algorithm: hd.sr.AlgorithmIdentification,
    source_image: hd.sr.SourceImageForMeasurementGroup,
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    code = finding_code(finding.name)
    evaluations = None
    if finding.calibrated:
        presence = codes.SCT.Present if finding.positive else codes.SCT.Absent
        evaluations = [hd.sr.QualitativeEvaluation(name=code, value=presence)]
    sites = None
    if site_name is not None:
        site = anatomy_site(site_name)
        sites = [hd.sr.FindingSite(site.code, laterality=site.laterality)]
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=ctx.instance_uid("sr-group", finding.name), identifier=f"MeDSLIP finding: {finding.name}"[:64]
        ),
        finding_type=code,
        algorithm_id=algorithm,
        finding_sites=sites,
        measurements=[
            hd.sr.Measurement(
                name=PROBABILITY, value=finding.score, unit=codes.UCUM.NoUnits, algorithm_id=algorithm
            )
        ],
        qualitative_evaluations=evaluations,
        source_images=[source_image],
    )


def uses_private_codes(classify: ClassifyResponse, ground: GroundResponse | None) -> bool:
    names = [f.name for f in classify.findings]
    private = [finding_code(n).scheme_designator == PRIVATE_SCHEME for n in names]
    private += [not anatomy_site(site).standard for site in finding_sites(ground).values()]
    return any(private)


def build_sr(
    ctx: ResultContext, classify: ClassifyResponse, ground: GroundResponse | None
) -> hd.sr.ComprehensiveSR:
    """TID 1500 report on one source image from the /classify (+ /ground) answers."""
    algorithm = hd.sr.AlgorithmIdentification(name=ctx.model_name, version=ctx.model_version)
    sites = finding_sites(ground)
    source_image = hd.sr.SourceImageForMeasurementGroup.from_source_image(ctx.source)
    groups = [_group(ctx, f, sites.get(f.name), algorithm, source_image) for f in classify.findings]
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
        procedure_reported=CHEST_IMAGING,
        imaging_measurements=groups,
        # highdicom's image-library entry for DX/CR needs ImagerPixelSpacing; without it the (mandatory)
        # library stays empty and the images are referenced from each group instead.
        referenced_images=[ctx.source] if "ImagerPixelSpacing" in ctx.source else None,
    )
    sr = hd.sr.ComprehensiveSR(
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
    if uses_private_codes(classify, ground):  # PS3.3 C.12.1.1.2: a private scheme must be declared
        declaration = pydicom.Dataset()
        declaration.CodingSchemeDesignator = PRIVATE_SCHEME
        declaration.CodingSchemeName = PRIVATE_SCHEME_NAME
        declaration.CodingSchemeResponsibleOrganization = ctx.manufacturer[:64]
        sr.CodingSchemeIdentificationSequence = [declaration]
    return sr
