"""The default instance: a standard lead schema, campaigns and a form.

Modelled on a real default Marketo instance (describe output): string/email/phone/... fields with
REST and SOAP names, system fields read-only, plus the custom fields Signal's demo account maps
(`certainRegistrationCode`, `dietaryNeeds`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simulators.marketo.config import SeedCampaign, SeedField, SeedForm, SeedFormField


@dataclass(frozen=True)
class SandboxField:
    id: int
    name: str
    displayName: str
    dataType: str
    length: int | None
    readOnly: bool
    soapName: str | None
    searchable: bool = False

    def describe(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": self.id,
            "displayName": self.displayName,
            "dataType": self.dataType,
        }
        if self.length is not None:
            item["length"] = self.length
        item["rest"] = {"name": self.name, "readOnly": self.readOnly}
        if self.soapName is not None:
            item["soap"] = {"name": self.soapName, "readOnly": self.readOnly}
        return item

    def describe2(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "name": self.name,
            "displayName": self.displayName,
            "dataType": self.dataType,
        }
        if self.length is not None:
            item["length"] = self.length
        item["updateable"] = not self.readOnly
        item["crmManaged"] = self.name.startswith("sfdc")
        return item


# (name, displayName, dataType, length, readOnly, soapName, searchable)
_STANDARD: list[tuple[str, str, str, int | None, bool, str | None, bool]] = [
    ("id", "Id", "integer", None, True, "Id", True),
    ("company", "Company Name", "string", 255, False, "Company", False),
    ("site", "Site", "string", 255, False, "Site", False),
    ("billingStreet", "Billing Address", "text", 65535, False, "BillingStreet", False),
    ("billingCity", "Billing City", "string", 255, False, "BillingCity", False),
    ("billingState", "Billing State", "string", 255, False, "BillingState", False),
    ("billingCountry", "Billing Country", "string", 255, False, "BillingCountry", False),
    ("billingPostalCode", "Billing Postal Code", "string", 255, False, "BillingPostalCode", False),
    ("website", "Website", "url", 255, False, "Website", False),
    ("mainPhone", "Main Phone", "phone", 255, False, "MainPhone", False),
    ("annualRevenue", "Annual Revenue", "currency", None, False, "AnnualRevenue", False),
    ("numberOfEmployees", "Num Employees", "integer", None, False, "NumberOfEmployees", False),
    ("industry", "Industry", "string", 255, False, "Industry", False),
    ("sicCode", "SIC Code", "string", 40, False, "SICCode", False),
    ("mktoCompanyNotes", "Company Notes", "string", 255, False, "MktoCompanyNotes", False),
    ("externalCompanyId", "External Company Id", "string", 100, False, "ExternalCompanyId", False),
    ("salutation", "Salutation", "string", 255, False, "Salutation", False),
    ("firstName", "First Name", "string", 255, False, "FirstName", False),
    ("middleName", "Middle Name", "string", 255, False, "MiddleName", False),
    ("lastName", "Last Name", "string", 255, False, "LastName", False),
    ("email", "Email Address", "email", 255, False, "Email", True),
    ("phone", "Phone Number", "phone", 255, False, "Phone", False),
    ("mobilePhone", "Mobile Phone Number", "phone", 255, False, "MobilePhone", False),
    ("fax", "Fax Number", "phone", 255, False, "Fax", False),
    ("title", "Job Title", "string", 255, False, "Title", False),
    ("contactCompany", "Contact Company", "reference", None, True, None, False),
    ("dateOfBirth", "Date of Birth", "date", None, False, "DateofBirth", False),
    ("address", "Address", "text", 65535, False, "Address", False),
    ("city", "City", "string", 255, False, "City", False),
    ("state", "State", "string", 255, False, "State", False),
    ("country", "Country", "string", 255, False, "Country", False),
    ("postalCode", "Postal Code", "string", 255, False, "PostalCode", False),
    (
        "originalSourceType",
        "Original Source Type",
        "string",
        255,
        True,
        "OriginalSourceType",
        False,
    ),
    (
        "originalSourceInfo",
        "Original Source Info",
        "string",
        255,
        True,
        "OriginalSourceInfo",
        False,
    ),
    (
        "registrationSourceType",
        "Registration Source Type",
        "string",
        255,
        False,
        "RegistrationSourceType",
        False,
    ),
    (
        "registrationSourceInfo",
        "Registration Source Info",
        "string",
        2000,
        False,
        "RegistrationSourceInfo",
        False,
    ),
    (
        "originalSearchEngine",
        "Original Search Engine",
        "string",
        255,
        True,
        "OriginalSearchEngine",
        False,
    ),
    (
        "originalSearchPhrase",
        "Original Search Phrase",
        "string",
        255,
        True,
        "OriginalSearchPhrase",
        False,
    ),
    ("originalReferrer", "Original Referrer", "string", 255, True, "OriginalReferrer", False),
    ("emailInvalid", "Email Invalid", "boolean", None, False, "EmailInvalid", False),
    ("emailInvalidCause", "Email Invalid Cause", "string", 255, False, "EmailInvalidCause", False),
    ("unsubscribed", "Unsubscribed", "boolean", None, False, "Unsubscribed", False),
    (
        "unsubscribedReason",
        "Unsubscribed Reason",
        "text",
        65535,
        False,
        "UnsubscribedReason",
        False,
    ),
    ("doNotCall", "Do Not Call", "boolean", None, False, "DoNotCall", False),
    ("doNotCallReason", "Do Not Call Reason", "string", 512, False, "DoNotCallReason", False),
    ("leadSource", "Lead Source", "string", 255, False, "LeadSource", False),
    ("leadStatus", "Lead Status", "string", 255, False, "LeadStatus", False),
    ("leadScore", "Lead Score", "integer", None, False, "LeadScore", False),
    ("urgency", "Urgency", "float", None, False, "Urgency", False),
    ("priority", "Priority", "integer", None, False, "Priority", False),
    ("relativeScore", "Relative Score", "integer", None, False, "RelativeScore", False),
    ("rating", "Lead Rating", "string", 255, False, "Rating", False),
    ("personType", "Person Type", "string", 255, True, None, False),
    ("isAnonymous", "Anonymous", "boolean", None, True, None, False),
    ("inferredCompany", "Inferred Company", "string", 255, True, "InferredCompany", False),
    ("inferredCountry", "Inferred Country", "string", 255, True, "InferredCountry", False),
    ("inferredCity", "Inferred City", "string", 255, True, "InferredCity", False),
    (
        "inferredStateRegion",
        "Inferred State Region",
        "string",
        255,
        True,
        "InferredStateRegion",
        False,
    ),
    (
        "inferredPostalCode",
        "Inferred Postal Code",
        "string",
        255,
        True,
        "InferredPostalCode",
        False,
    ),
    (
        "inferredMetropolitanArea",
        "Inferred Metropolitan Area",
        "string",
        255,
        True,
        "InferredMetropolitanArea",
        False,
    ),
    (
        "inferredPhoneAreaCode",
        "Inferred Phone Area Code",
        "string",
        255,
        True,
        "InferredPhoneAreaCode",
        False,
    ),
    ("leadPartitionId", "Lead Partition Id", "integer", None, True, None, True),
    ("mktoName", "Full Name", "string", 255, True, None, False),
    ("leadPerson", "Lead Person", "integer", None, True, None, False),
    ("sfdcLeadId", "SFDC Lead Id", "string", 18, True, None, True),
    ("sfdcContactId", "SFDC Contact Id", "string", 18, True, None, True),
    ("sfdcAccountId", "SFDC Account Id", "string", 18, True, None, True),
    (
        "mktoAcquisitionDate",
        "Acquisition Date",
        "datetime",
        None,
        False,
        "MktoAcquisitionDate",
        False,
    ),
    ("acquisitionProgramId", "Acquisition Program Id", "integer", None, False, None, False),
    ("cookies", "Cookies", "string", 255, True, None, True),
    ("createdAt", "Created At", "datetime", None, True, None, False),
    ("updatedAt", "Updated At", "datetime", None, True, None, False),
]

DEFAULT_CUSTOM: list[SeedField] = [
    SeedField(
        name="certainRegistrationCode",
        displayName="Certain Registration Code",
        length=255,
        searchable=True,
        soapName="CertainRegistrationCode",
    ),
    SeedField(
        name="dietaryNeeds", displayName="Dietary Needs", length=255, soapName="DietaryNeeds"
    ),
]

DEFAULT_LEAD_FIELDS = ("id", "email", "updatedAt", "createdAt", "firstName", "lastName")


def build_schema(extra: list[SeedField]) -> dict[str, SandboxField]:
    fields: dict[str, SandboxField] = {}
    for n, (name, display, dtype, length, ro, soap, searchable) in enumerate(_STANDARD, start=1):
        fields[name] = SandboxField(n, name, display, dtype, length, ro, soap, searchable)
    next_id = 1000
    for custom in [*DEFAULT_CUSTOM, *extra]:
        next_id += 1
        fields[custom.name] = SandboxField(
            id=next_id,
            name=custom.name,
            displayName=custom.displayName or custom.name,
            dataType=custom.dataType,
            length=custom.length
            if custom.dataType in ("string", "text", "email", "phone", "url")
            else None,
            readOnly=custom.readOnly,
            soapName=custom.soapName or (custom.name[:1].upper() + custom.name[1:]),
            searchable=custom.searchable,
        )
    return fields


DEFAULT_CAMPAIGNS: list[SeedCampaign] = [
    SeedCampaign(
        id=1001,
        name="Registration Confirmed",
        description="Requested by Signal when a registration is confirmed",
        qualificationRuleType="any",
    ),
    SeedCampaign(
        id=1002,
        name="Attended Event",
        description="Requested by Signal when an attendee checks in",
        qualificationRuleType="once",
    ),
    SeedCampaign(
        id=2001,
        name="Weekly Newsletter",
        type="batch",
        requestable=False,
        description="Batch campaign; cannot be requested",
    ),
    SeedCampaign(
        id=3001,
        name="Old Webinar Follow-up",
        active=False,
        description="Trigger campaign that is not active",
    ),
    SeedCampaign(
        id=3002,
        name="Form Fill Nurture",
        requestable=False,
        description="Active trigger campaign without a Web Service API trigger",
    ),
]

DEFAULT_FORMS: list[SeedForm] = [
    SeedForm(
        id=1234,
        name="Event Registration",
        description="Registration form used by Signal's Form Post action",
        fields=[
            SeedFormField(id="FirstName", label="First Name:"),
            SeedFormField(id="LastName", label="Last Name:"),
            SeedFormField(id="Email", label="Email Address:", dataType="email", required=True),
            SeedFormField(id="Company", label="Company Name:"),
            SeedFormField(id="Title", label="Job Title:"),
            SeedFormField(id="Phone", label="Phone Number:", dataType="telephone"),
            SeedFormField(
                id="Country",
                label="Country:",
                dataType="select",
                values=[
                    {"label": "Select...", "value": "", "isDefault": True},
                    {"label": "United States", "value": "United States"},
                    {"label": "Canada", "value": "Canada"},
                    {"label": "Germany", "value": "Germany"},
                ],
            ),
            SeedFormField(id="DietaryNeeds", label="Dietary Needs:", dataType="textArea"),
            SeedFormField(id="CertainRegistrationCode", label="", dataType="hidden"),
        ],
    ),
    SeedForm(
        id=1235,
        name="Newsletter Signup (draft)",
        status="draft",
        folderId=13,
        folderName="Drafts",
        fields=[SeedFormField(id="Email", label="Email:", dataType="email", required=True)],
    ),
]


def merge_by_id(defaults: list[Any], seeded: list[Any], use_defaults: bool) -> list[Any]:
    merged = {item.id: item for item in defaults} if use_defaults else {}
    for item in seeded:
        merged[item.id] = item
    return [merged[k] for k in sorted(merged)]
