"""Patient and study modules copied in full from the source image onto every result object.

highdicom copies only the attributes it needs (name, ID, birth date, sex, the Type 2 study ones); a PACS
that reconciles patients by Other Patient IDs or shows the age at the study would see less on our
objects than on the image they describe. So every attribute these modules define and the source has
is copied as is (header values are the PACS's; the bridge neither logs nor changes them).
"""

from __future__ import annotations

import copy

import pydicom

#: PS3.3 C.7.1.1 Patient Module (retired Other Patient IDs included: sources still carry it).
PATIENT_MODULE = (
    "PatientName", "PatientID", "IssuerOfPatientID", "IssuerOfPatientIDQualifiersSequence",
    "TypeOfPatientID", "PatientBirthDate", "PatientBirthTime", "PatientBirthDateInAlternativeCalendar",
    "PatientDeathDateInAlternativeCalendar", "PatientAlternativeCalendar", "PatientSex",
    "ReferencedPatientPhotoSequence", "QualityControlSubject", "ReferencedPatientSequence",
    "OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames", "EthnicGroup",
    "EthnicGroupCodeSequence", "PatientComments", "PatientSpeciesDescription",
    "PatientSpeciesCodeSequence", "PatientBreedDescription", "PatientBreedCodeSequence",
    "BreedRegistrationSequence", "StrainDescription", "StrainNomenclature", "StrainCodeSequence",
    "StrainAdditionalInformation", "StrainStockSequence", "GeneticModificationsSequence",
    "ResponsiblePerson", "ResponsiblePersonRole", "ResponsibleOrganization", "PatientIdentityRemoved",
    "DeidentificationMethod", "DeidentificationMethodCodeSequence",
    "SourcePatientGroupIdentificationSequence", "GroupOfPatientsIdentificationSequence",
)  # fmt: skip

#: PS3.3 C.7.2.1 General Study Module.
GENERAL_STUDY_MODULE = (
    "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName",
    "ReferringPhysicianIdentificationSequence", "ConsultingPhysicianName",
    "ConsultingPhysicianIdentificationSequence", "StudyID", "AccessionNumber",
    "IssuerOfAccessionNumberSequence", "StudyDescription", "PhysiciansOfRecord",
    "PhysiciansOfRecordIdentificationSequence", "NameOfPhysiciansReadingStudy",
    "PhysiciansReadingStudyIdentificationSequence", "RequestingServiceCodeSequence",
    "ReferencedStudySequence", "ProcedureCodeSequence", "ReasonForPerformedProcedureCodeSequence",
)  # fmt: skip

#: PS3.3 C.7.2.2 Patient Study Module.
PATIENT_STUDY_MODULE = (
    "AdmittingDiagnosesDescription", "AdmittingDiagnosesCodeSequence", "PatientAge", "PatientSize",
    "PatientWeight", "PatientBodyMassIndex", "MeasuredAPDimension", "MeasuredLateralDimension",
    "PatientSizeCodeSequence", "MedicalAlerts", "Allergies", "SmokingStatus", "PregnancyStatus",
    "LastMenstrualDate", "PatientState", "Occupation", "AdditionalPatientHistory", "AdmissionID",
    "IssuerOfAdmissionIDSequence", "ServiceEpisodeID", "IssuerOfServiceEpisodeIDSequence",
    "ServiceEpisodeDescription", "PatientSexNeutered", "ReasonForVisit", "ReasonForVisitCodeSequence",
)  # fmt: skip

#: PS3.3 C.7.1.3 / C.7.2.3 Clinical Trial Subject and Clinical Trial Study Modules.
CLINICAL_TRIAL_MODULES = (
    "ClinicalTrialSponsorName", "ClinicalTrialProtocolID", "ClinicalTrialProtocolName",
    "ClinicalTrialSiteID", "ClinicalTrialSiteName", "ClinicalTrialSubjectID",
    "ClinicalTrialSubjectReadingID", "ClinicalTrialProtocolEthicsCommitteeName",
    "ClinicalTrialProtocolEthicsCommitteeApprovalNumber", "ClinicalTrialTimePointID",
    "ClinicalTrialTimePointDescription", "ConsentForClinicalTrialUseSequence",
)  # fmt: skip

COPIED_KEYWORDS = PATIENT_MODULE + GENERAL_STUDY_MODULE + PATIENT_STUDY_MODULE + CLINICAL_TRIAL_MODULES


def copy_patient_and_study(source: pydicom.Dataset, target: pydicom.Dataset) -> list[str]:
    """Copy every patient/study module attribute the source has onto `target`; returns the keywords."""
    copied = []
    for keyword in COPIED_KEYWORDS:
        if keyword in source:
            target[keyword] = copy.deepcopy(source[keyword])
            copied.append(keyword)
    return copied


def source_image_item(source: pydicom.Dataset) -> pydicom.Dataset:
    """One Referenced/Source Image Sequence item: the source's SOP Class and Instance UID."""
    item = pydicom.Dataset()
    item.ReferencedSOPClassUID = source.SOPClassUID
    item.ReferencedSOPInstanceUID = source.SOPInstanceUID
    return item
