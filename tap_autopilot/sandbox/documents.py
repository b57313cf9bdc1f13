"""Contact documents: the shareable "profiles" they are made of, and their JSON.

A document = its profile's static part (names, address, maps, custom values,
extras: the expensive random choices, made once per profile and cached) +
per-contact values (id, email, times, lists, mail times). Documents are
served as JSON assembled from pre-encoded fragments, with no dict built and
no encoder run per contact.

Two shapes:
- recordings (the default): what the live API was recorded sending. Keys only
  when set (no `lists` for a contact on no list, no empty maps), empty strings,
  numbers as strings, undocumented extras (`_rev`, `api_originated`,
  `employeesRange`), custom values with `deleted`.
- dense: every key on every document, typed values, nulls for unset fields:
  the shape the project first assumed, kept for tolerance tests.
"""

import json
import random
import unicodedata
from typing import Any

from .timestamps import iso_ms, rfc1123
from .vocabulary import (
    ADDRESSES,
    COLORS,
    COMPANIES,
    CUSTOM_FIELDS,
    FIRST,
    FORMS,
    INDUSTRIES,
    LAST,
    LATE_FIELD,
    LEAD_SOURCES,
    LONG_NAMED_FIELDS,
    MAIL_KEYS,
    OWNERS,
    PAGES,
    RECORDINGS_CUSTOM_FIELDS,
    SALUTATIONS,
    STATUSES,
    TITLES,
    UTMS,
)

UPDATED_MIN = 1546300800000  # 2019-01-01
UPDATED_END = 1767225600000  # 2026-01-01, exclusive: every generated updated_at is before it
CREATED_MIN = 1420070400000  # 2015-01-01

encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

# PascalCase standard field -> the snake_case spelling (the snake_case_share knob).
SNAKE_CASE = {
    "Email": "email",
    "FirstName": "first_name",
    "LastName": "last_name",
    "Name": "name",
    "Salutation": "salutation",
    "Company": "company",
    "NumberOfEmployees": "number_of_employees",
    "Title": "title",
    "Industry": "industry",
    "Phone": "phone",
    "MobilePhone": "mobile_phone",
    "Fax": "fax",
    "Website": "website",
    "MailingStreet": "mailing_street",
    "MailingCity": "mailing_city",
    "MailingState": "mailing_state",
    "MailingPostalCode": "mailing_postal_code",
    "MailingCountry": "mailing_country",
    "LeadSource": "lead_source",
    "Status": "status",
    "LinkedIn": "linkedin",
    "Twitter": "twitter",
    "Unsubscribed": "unsubscribed",
}

# Fields that may be unset.
_OPTIONAL = (
    "Salutation",
    "Company",
    "NumberOfEmployees",
    "Title",
    "Industry",
    "Phone",
    "MobilePhone",
    "Fax",
    "Website",
    "MailingStreet",
    "MailingCity",
    "MailingState",
    "MailingPostalCode",
    "MailingCountry",
    "LeadSource",
    "Status",
    "LinkedIn",
    "Twitter",
    "owner_name",
)
# Text fields the live API sends as "" when unset (Twitter, Company, ... were seen).
_MAY_BE_EMPTY = ("Company", "Title", "Phone", "Twitter", "LinkedIn", "Website", "Salutation", "MailingState")

_EXTRA_NOTE_JSON = ',"ExtraNote":"imported from legacy CRM"'  # the dense shape's one extra field

# Letters NFKD does not split into base letter + accent.
_NO_DECOMPOSITION = str.maketrans(
    {"Ł": "L", "ł": "l", "Ø": "O", "ø": "o", "Đ": "D", "đ": "d", "Æ": "AE", "æ": "ae", "ß": "ss"}
)


def _ascii_slug(text):
    """'Łukasz' -> 'lukasz'; CJK-only names fall back to 'user' (emails must stay ASCII)."""
    text = text.translate(_NO_DECOMPOSITION)
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = "".join(c for c in plain.lower() if c.isalnum())
    return slug or "user"


_FIRST_SLUGS = tuple(_ascii_slug(n) for n in FIRST)
_LAST_SLUGS = tuple(_ascii_slug(n) for n in LAST)


def jtext(v):
    """JSON for an ASCII-safe str, an int or None."""
    if v is None:
        return "null"
    return '"%s"' % v if type(v) is str else str(v)


def custom_field_definitions(salt, recordings, extra=()):
    """The /contacts/custom_fields body: name, fieldType and a stable key (extra:
    more (name, fieldType) after the account's own)."""
    out = []
    for k, (name, field_type) in enumerate((RECORDINGS_CUSTOM_FIELDS if recordings else CUSTOM_FIELDS) + extra):
        created = CREATED_MIN + k * 86400000 + (salt >> (k + 3)) % 86400000
        out.append(
            {
                "name": name,
                "fieldType": field_type,
                "key": "contacts_customfields_%d_%08x-%04x-%04x-%04x-%012x"
                % (
                    created,
                    salt >> 32 & 0xFFFFFFFF,
                    k,
                    salt >> 16 & 0xFFFF,
                    salt & 0xFFFF,
                    (salt * (k + 1)) & 0xFFFFFFFFFFFF,
                ),
            }
        )
    return out


def _bool_map(r, pool, most):
    """Object URL -> bool: a run of 0..most consecutive pool entries."""
    n = min(int(r() * (most + 1)), len(pool))
    start = int(r() * len(pool))
    return {pool[(start + k) % len(pool)]: r() < 0.9 for k in range(n)}


def _custom_value(r, field_type, recordings):
    if field_type in ("string", "picklist"):
        color = COLORS[int(r() * len(COLORS))]
        if recordings and r() < 0.1:
            color = ""
        return color
    if field_type == "integer":
        value = 1 + int(r() * 500)
    elif field_type == "float":
        value = round(r() * 10000, 2)
    elif field_type == "boolean":
        return r() < 0.5
    else:
        ms = UPDATED_MIN + int(r() * 8 * 365 * 86400000)
        return rfc1123(ms) if recordings and r() < 0.1 else iso_ms(ms)
    return str(value) if recordings and r() < 0.3 else value  # numbers as strings


def _custom_values(r, recordings):
    """custom_fields entries: a random subset of the defined fields."""
    out = []
    for name, field_type in RECORDINGS_CUSTOM_FIELDS if recordings else CUSTOM_FIELDS:
        if r() >= (0.45 if recordings else 0.6):
            continue
        value = _custom_value(r, field_type, recordings)
        if r() < 0.03:
            value = None
        entry = {"kind": name, "value": value, "fieldType": field_type}
        if recordings:
            entry["deleted"] = r() < 0.08
        out.append(entry)
    return out


class Profile:
    """The static, shareable part of a contact document, pre-encoded."""

    __slots__ = (
        "_fields",
        "_fields_json",
        "conversion",
        "custom_json",
        "email",
        "extras_json",
        "has_conversion",
        "has_custom",
        "mail_args",
        "mail_format",
        "mail_fracs",
        "visit",
    )

    def __init__(self, rng, mail_ids, recordings):
        r = rng.random
        fi, li = int(r() * len(FIRST)), int(r() * len(LAST))
        company, domain = COMPANIES[int(r() * len(COMPANIES))]
        street, city, state, postal, country = ADDRESSES[int(r() * len(ADDRESSES))]
        first, last = FIRST[fi], LAST[li]
        slug = _FIRST_SLUGS[fi] + "." + _LAST_SLUGS[li]
        phone = "+1 415 555 %04d" % int(r() * 10000)
        employees = (1, 5, 12, 50, 250, 1200, 10001)[int(r() * 7)]
        fields = {
            "FirstName": first,
            "LastName": last,
            "Name": first + " " + last if r() >= 0.02 else None,
            "Salutation": SALUTATIONS[int(r() * len(SALUTATIONS))],
            "Company": company,
            "NumberOfEmployees": employees,
            "Title": TITLES[int(r() * len(TITLES))],
            "Industry": INDUSTRIES[int(r() * len(INDUSTRIES))],
            "Phone": phone,
            "MobilePhone": "+44 7700 9%05d" % int(r() * 100000),
            "Fax": phone,
            "Website": "https://www." + domain,
            "MailingStreet": "%d %s" % (1 + int(r() * 999), street),
            "MailingCity": city,
            "MailingState": state,
            "MailingPostalCode": postal,
            "MailingCountry": country,
            "LeadSource": LEAD_SOURCES[int(r() * len(LEAD_SOURCES))],
            "Status": STATUSES[int(r() * len(STATUSES))],
            "LinkedIn": "https://www.linkedin.com/in/" + slug,
            "Twitter": "@" + _LAST_SLUGS[li] + str(int(r() * 100)),
            "Unsubscribed": r() < 0.1,
            "owner_name": OWNERS[int(r() * len(OWNERS))],
        }
        extras: dict[str, Any] = {}
        if recordings:
            self.email = "%s%%d@%s" % (slug, domain) if r() >= 0.1 else None  # some have no Email
            for key in ("FirstName", "LastName", "Name", "Unsubscribed") + _OPTIONAL:
                u = r()
                if u < 0.3 or fields[key] is None:
                    del fields[key]  # keys only when set
                elif u < 0.42 and key in _MAY_BE_EMPTY:
                    fields[key] = ""
            if "NumberOfEmployees" in fields and r() < 0.5:
                fields["NumberOfEmployees"] = str(employees)  # "10001"
                extras["employeesRange"] = {"min": employees}
            if r() < 0.5:
                fields["company_priority"] = r() < 0.2
            if r() < 0.9:
                fields["type"] = "Contact"
            if r() < 0.6:
                extras["_rev"] = "%d-%016x%016x" % (1 + int(r() * 9), rng.getrandbits(64), rng.getrandbits(64))
            if r() < 0.5:
                extras["api_originated"] = r() < 0.7
            for key, pool, most in (
                ("anywhere_page_visits", PAGES, 5),
                ("anywhere_form_submits", FORMS, 3),
                ("anywhere_utm", UTMS, 3),
            ):
                flags = _bool_map(r, pool, most)
                if flags:
                    fields[key] = flags
        else:
            self.email = "%s%%d@%s" % (slug, domain)
            for key in _OPTIONAL:  # some fields null, some missing
                u = r()
                if u < 0.06:
                    fields[key] = None
                elif u < 0.12:
                    del fields[key]
            fields["company_priority"] = r() < 0.2
            fields["type"] = "Contact"
            fields["anywhere_page_visits"] = _bool_map(r, PAGES, 5)
            fields["anywhere_form_submits"] = _bool_map(r, FORMS, 3)
            fields["anywhere_utm"] = _bool_map(r, UTMS, 3)
        self._fields = fields
        self._fields_json: list[str | None] = [None, None]  # [PascalCase, snake_case], built on first use

        self.visit = r() if r() < 0.7 else None
        self.conversion = r() if self.visit is not None and r() < 0.5 else None
        self.has_conversion = r() >= 0.1  # dense shape: whether the key is there (null) at all
        mail = []
        start = int(r() * len(mail_ids))
        for n in range(int(r() * 6)):
            opened = r() < 0.6
            clicked = opened and r() < 0.4
            rare = MAIL_KEYS[3 + int(r() * 4)] if r() < 0.05 else None
            mail.append((mail_ids[(start + n) % len(mail_ids)], r(), opened, clicked, rare))
        mail_keys = tuple(key for key in MAIL_KEYS if key != "mail_complained" or r() >= 0.05)
        self.mail_fracs = tuple(m[1] for m in mail)
        parts, args = [], []
        for key in mail_keys:
            entries = []
            for k, (mid, _, opened, clicked, rare) in enumerate(mail):
                offset = {
                    "mail_received": 0,
                    "mail_opened": 3600000 if opened else None,
                    "mail_clicked": 3660000 if clicked else None,
                }.get(key, 1000 if rare == key else None)
                if offset is not None:
                    entries.append('"%s":%%d' % mid)
                    args.append((k, offset))
            if entries or not recordings:  # recordings: no empty maps
                parts.append(',"%s":{%s}' % (key, ",".join(entries)))
        self.mail_format = "".join(parts)
        self.mail_args = tuple(args)
        custom = _custom_values(r, recordings)
        self.has_custom = bool(custom) or not recordings
        self.custom_json = encode(custom)[1:-1]
        self.extras_json = encode(extras)[1:-1]
        if self.extras_json:
            self.extras_json = "," + self.extras_json

    def fields_json(self, snake):
        """The static fields as JSON members (',"FirstName":"Ann",...'), in either spelling."""
        out = self._fields_json[snake]
        if out is None:
            fields = {SNAKE_CASE.get(k, k): v for k, v in self._fields.items()} if snake else self._fields
            out = encode(fields)[1:-1]
            out = self._fields_json[snake] = "," + out if out else ""
        return out


def document_json(
    p, cid, email, visit, conversion, lists, mail_times, late, extra, created, updated, snake, recordings
):
    """One contact's JSON text from its profile and per-contact values
    (timestamps already in their text or epoch form; None: absent)."""
    out = ['{"contact_id":"', cid, '"']
    if email is not None:
        out.append(',"%s":"%s"' % ("email" if snake else "Email", email))
    out.append(p.fields_json(snake))
    if recordings:
        if visit is not None:
            out.append(',"first_visit_at":"%s"' % visit)
            if conversion is not None:
                out.append(',"first_conversion_at":"%s"' % conversion)
        if lists:
            out.append(',"lists":["%s"]' % '","'.join(lists))
    else:
        out.append(',"first_visit_at":%s' % jtext(visit))
        if p.has_conversion:
            out.append(',"first_conversion_at":%s' % jtext(conversion))
        out.append(',"lists":[%s]' % ('"%s"' % '","'.join(lists) if lists else ""))
    if p.mail_format:
        out.append(p.mail_format % tuple([mail_times[k] + off for k, off in p.mail_args]))
    if p.has_custom or late:
        late_json = encode(dict(LATE_FIELD, deleted=False) if recordings else LATE_FIELD) if late else ""
        sep = "," if p.custom_json and late_json else ""
        out.append(',"custom_fields":[%s%s%s]' % (p.custom_json, sep, late_json))
    out.append(p.extras_json)
    if extra:
        out.append(_EXTRA_NOTE_JSON)
    if created is not None:
        out.append(',"created_at":%s' % jtext(created))
    if updated is not None:
        out.append(',"updated_at":%s' % jtext(updated))
    out.append("}")
    return "".join(out)


def minimal_json(cid, created, api_originated):
    """The sparsest document the recordings show: an id, a creation time and a flag."""
    return '{"contact_id":"%s","created_at":%s,"api_originated":%s}' % (
        cid,
        jtext(created),
        "true" if api_originated else "false",
    )


def touched_json(text, touched, updated, snake):
    """A document after `touched` changes through the admin endpoint: a new Title
    (a visible change, so upserts can be checked) and updated_at."""
    doc = json.loads(text)
    key = "title" if snake else "Title"
    doc[key] = "%s (touched %d)" % (doc.get(key) or "Untitled", touched)
    doc["updated_at"] = updated
    return encode(doc)


_FIELD_TYPES = dict(RECORDINGS_CUSTOM_FIELDS + LONG_NAMED_FIELDS)


def awkward_json(text, members, custom):
    """A document's JSON `text` with `members` ({key: raw JSON text}) in place of its
    own, and `custom` ({kind: raw JSON value}) in its custom_fields, replacing the
    entries of those kinds. Raw text, because these values are what an encoder would
    never write: lone surrogate escapes, 1e400, integers beyond 64 bits."""
    doc = json.loads(text)
    for key in members:
        doc.pop(key, None)
    kept = [encode(entry) for entry in doc.pop("custom_fields", None) or [] if entry.get("kind") not in custom]
    added = [
        '{"kind":%s,"value":%s,"fieldType":"%s","deleted":false}' % (encode(kind), raw, _FIELD_TYPES[kind])
        for kind, raw in custom.items()
    ]
    out = [encode(doc)[:-1]]
    out += [",%s:%s" % (encode(key), raw) for key, raw in members.items()]
    out.append(',"custom_fields":[%s]}' % ",".join(kept + added))
    return "".join(out)


def with_custom_fields(text, entries):
    """A document's JSON `text` with `entries` ({kind: custom_fields entry}) in place of its
    custom_fields entries of those kinds (set through the admin endpoint)."""
    doc = json.loads(text)
    kept = [entry for entry in doc.get("custom_fields") or [] if entry.get("kind") not in entries]
    doc["custom_fields"] = kept + [dict(entry) for entry in entries.values()]
    return encode(doc)


def new_profile(seed_int, mail_ids, recordings):
    return Profile(random.Random(seed_int), mail_ids, recordings)
