"""Deterministic, lazily generated Autopilot dataset for the local sandbox.

Nothing per contact is stored up front: contact ``i``'s document is rebuilt on
demand from ``(seed, i)`` plus a small override dict written by mutations, so a
100k-contact dataset costs next to no memory.  The expensive random choices
(names, addresses, maps) live in a fixed pool of cached "profiles" that
contacts pick by hash.  Contact ids encode their index (reversibly), so a
bookmark resolves to its position in O(1) without a lookup table.
"""

import json
import random
import threading
import time
import unicodedata
from array import array
from bisect import bisect_right

PAGE_SIZE = 100
_PROFILES = 1024  # cached document profiles per dataset (power of two)
_INV53 = 1.0 / (1 << 53)

_M32 = 0xFFFFFFFF
_M64 = 0xFFFFFFFFFFFFFFFF

# Time ranges (epoch ms, UTC).
_CREATED_MIN = 1420070400000  # 2015-01-01
_UPDATED_MIN = 1546300800000  # 2019-01-01
_UPDATED_END = 1767225600000  # 2026-01-01, exclusive: every generated updated_at is before it

# Share of list members per list (cycled). 0.0 gives an empty list; 0.45 makes a
# 300-contact dataset's first list span two pages.
_LIST_SHARES = (0.45, 0.1, 0.0, 0.3, 0.02, 0.6)
_SEGMENT_SHARES = (0.4, 0.05, 0.0, 0.25)

_MAIL_KEYS = ("mail_received", "mail_opened", "mail_clicked", "mail_bounced",
              "mail_complained", "mail_unsubscribed", "mail_hardbounced")

_CUSTOM_FIELDS = (
    ("Favorite Color", "string"),
    ("Seats", "integer"),
    ("Lifetime Value", "float"),
    ("Is Partner", "boolean"),
    ("Renewal Date", "date"),
)

# PascalCase standard field -> the snake_case spelling some contacts use instead.
SNAKE_CASE = {
    "Email": "email", "FirstName": "first_name", "LastName": "last_name",
    "Name": "name", "Salutation": "salutation", "Company": "company",
    "NumberOfEmployees": "number_of_employees", "Title": "title",
    "Industry": "industry", "Phone": "phone", "MobilePhone": "mobile_phone",
    "Fax": "fax", "Website": "website", "MailingStreet": "mailing_street",
    "MailingCity": "mailing_city", "MailingState": "mailing_state",
    "MailingPostalCode": "mailing_postal_code", "MailingCountry": "mailing_country",
    "LeadSource": "lead_source", "Status": "status", "LinkedIn": "linkedin",
    "Twitter": "twitter", "Unsubscribed": "unsubscribed",
}

# Fields that may come back null or be missing altogether.
_OPTIONAL = (
    "Salutation", "Company", "NumberOfEmployees", "Title", "Industry", "Phone",
    "MobilePhone", "Fax", "Website", "MailingStreet", "MailingCity", "MailingState",
    "MailingPostalCode", "MailingCountry", "LeadSource", "Status", "LinkedIn",
    "Twitter", "owner_name",
)

_FIRST = (
    "Ana", "José", "Zoë", "Łukasz", "Søren", "Chloé", "François", "Đorđe", "Jürgen",
    "Ngọc", "美咲", "伟", "Ольга", "Αλέξης", "Siobhán", "Renée", "Mateo", "Priya",
    "Kwame", "Zoë 🌸", "Ann \"Annie\"", "Mary-Jane", "Öykü", "Håkon", "Li", "Sam",
)
_LAST = (
    "Smith", "García", "Müller", "Kowalski", "O'Brien", "Nguyễn", "佐藤", "王",
    "Иванова", "Παπαδόπουλος", "Ó Súilleabháin", "da Silva", "Johansson", "Núñez",
    "D'Angelo", "Lee", "Okafor", "Schröder", "Tanaka 🚀", "van der Berg",
)
_COMPANIES = (
    ("Acme Corp", "acme.example"), ("Globex", "globex.example"),
    ("Initech", "initech.example"), ("Umbrella GmbH", "umbrella.example"),
    ("Société Générale des Tests", "sgt.example"), ("株式会社サンプル", "sample.example"),
    ("Wayne & Sons", "wayne.example"), ("Hooli", "hooli.example"),
    ("Ærø Shipping", "aero.example"), ("Pied Piper", "piedpiper.example"),
)
_TITLES = ("CEO", "CTO", "VP Marketing", "Growth Lead", "Engineer", "Designer",
           "Directrice commerciale", "Product Manager", "Founder", "Analyst")
_INDUSTRIES = ("Software", "Retail", "Finance", "Healthcare", "Education", "Media",
               "Manufacturing", "Non-profit")
_ADDRESSES = (  # (street suffix, city, state, postal code, country)
    ("Market St", "San Francisco", "CA", "94103", "United States"),
    ("Broadway", "New York", "NY", "10012", "United States"),
    ("Baker Street", "London", None, "NW1 6XE", "United Kingdom"),
    ("Rue de Rivoli", "Paris", "Île-de-France", "75001", "France"),
    ("Friedrichstraße", "Berlin", "Berlin", "10117", "Germany"),
    ("George St", "Sydney", "NSW", "2000", "Australia"),
    ("銀座", "東京", "東京都", "104-0061", "Japan"),
    ("Avenida Paulista", "São Paulo", "SP", "01310-100", "Brazil"),
)
_LEAD_SOURCES = ("Web", "Referral", "Webinar", "Trade Show", "Partner", "Cold Call")
_STATUSES = ("Open", "Contacted", "Qualified", "Customer", "Churned")
_SALUTATIONS = ("Mr.", "Ms.", "Mrs.", "Dr.", "Mx.", "Prof.")
_OWNERS = ("Alice Owner", "Bob Owner", "Chantal Propriétaire", "陈经理")
_COLORS = ("red", "green", "blue", "chartreuse", "bleu ciel", "紫", "🟧 orange")
_PAGES = (
    "https://www.acme.example/", "https://www.acme.example/pricing",
    "https://www.acme.example/blog/2019/05/hello-world",
    "https://www.acme.example/features?tab=journeys",
    "http://acme.example/signup#step-2", "https://docs.acme.example/api/v1/contacts",
    "https://www.acme.example/über-uns", "https://www.acme.example/contact.html",
)
_FORMS = (
    "https://www.acme.example/signup", "https://www.acme.example/demo-request",
    "https://www.acme.example/newsletter", "https://www.acme.example/ebook?id=42",
)
_UTMS = (
    "utm_source=google&utm_medium=cpc&utm_campaign=brand",
    "utm_source=newsletter&utm_medium=email",
    "utm_source=twitter&utm_medium=social&utm_content=launch",
    "utm_source=partner&utm_medium=referral&utm_term=crm tools",
)
_LIST_TITLES = ("Newsletter Subscribers", "Trial Users — Q3", "Événements 2024",
                "客户名单", "VIP 🌟", "Churned (do not email)")
_SEGMENT_TITLES = ("Engaged last 30 days", "Never opened", "Big companies (>1000)",
                   "Paris & Berlin")


# Letters NFKD does not split into base letter + accent.
_NO_DECOMPOSITION = str.maketrans({"Ł": "L", "ł": "l", "Ø": "O", "ø": "o", "Đ": "D",
                                   "đ": "d", "Æ": "AE", "æ": "ae", "ß": "ss"})


def _ascii_slug(text):
    """'Łukasz' -> 'lukasz'; CJK-only names fall back to 'user' (emails must stay ASCII)."""
    text = text.translate(_NO_DECOMPOSITION)
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = "".join(c for c in plain.lower() if c.isalnum())
    return slug or "user"


_FIRST_SLUGS = tuple(_ascii_slug(n) for n in _FIRST)
_LAST_SLUGS = tuple(_ascii_slug(n) for n in _LAST)


def mix64(x):
    """Cheap 64-bit finaliser (murmur3 style): a stable, well-spread hash of an int."""
    x &= _M64
    x = ((x ^ (x >> 33)) * 0xFF51AFD7ED558CCD) & _M64
    x = ((x ^ (x >> 33)) * 0xC4CEB9FE1A85EC53) & _M64
    return x ^ (x >> 33)


# Reversible 32-bit scramble: contact ids look random but encode their index.
_A = 0x9E3779B1
_B = 0x85EBCA6B
_A_INV = pow(_A, -1, 1 << 32)
_B_INV = pow(_B, -1, 1 << 32)


def _scramble(i, salt):
    x = ((i ^ salt) * _A) & _M32
    x ^= x >> 16
    return (x * _B) & _M32


def _unscramble(x, salt):
    x = (x * _B_INV) & _M32
    x ^= x >> 16
    return ((x * _A_INV) & _M32) ^ salt


def _uuid(h1, h2):
    """Format 128 bits as an upper-case UUID-shaped string (32 hex digits)."""
    h = "%016X%016X" % (h1 & _M64, h2 & _M64)
    return "%s-%s-%s-%s-%s" % (h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])


_DAY_PREFIX = {}  # day number -> 'YYYY-MM-DDT' (a few thousand days at most)


def iso_ms(ms):
    """Epoch ms -> '2015-04-29T23:15:25.347Z' (the API's timestamp style)."""
    day, rem = divmod(ms, 86400000)
    prefix = _DAY_PREFIX.get(day)
    if prefix is None:
        t = time.gmtime(day * 86400)
        prefix = _DAY_PREFIX[day] = "%04d-%02d-%02dT" % (t[0], t[1], t[2])
    s, milli = divmod(rem, 1000)
    m, s = divmod(s, 60)
    h, m = divmod(m, 60)
    return "%s%02d:%02d:%02d.%03dZ" % (prefix, h, m, s, milli)


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _snake(doc):
    return {SNAKE_CASE.get(k, k): v for k, v in doc.items()}


def _bool_map(r, pool, most):
    """Object URL -> bool: a run of 0..most consecutive pool entries."""
    n = min(int(r() * (most + 1)), len(pool))
    start = int(r() * len(pool))
    return {pool[(start + k) % len(pool)]: r() < 0.9 for k in range(n)}


def _custom_values(r):
    """custom_fields entries: a random subset of the defined fields, typed values."""
    out = []
    for name, ftype in _CUSTOM_FIELDS:
        if r() >= 0.6:
            continue
        if ftype == "string":
            value = _COLORS[int(r() * len(_COLORS))]
        elif ftype == "integer":
            value = 1 + int(r() * 500)
        elif ftype == "float":
            value = round(r() * 10000, 2)
        elif ftype == "boolean":
            value = r() < 0.5
        else:
            value = iso_ms(_UPDATED_MIN + int(r() * 8 * 365 * 86400000))
        if r() < 0.03:
            value = None
        out.append({"kind": name, "value": value, "fieldType": ftype})
    return out


_LATE_FIELD = {"kind": "Late Field", "value": "added after discovery", "fieldType": "string"}
_EXTRA_NOTE = "imported from legacy CRM"
_EXTRA_JSON = ',"ExtraNote":"%s"' % _EXTRA_NOTE


def _jtext(v):
    """JSON for an ASCII-safe str, an int or None."""
    if v is None:
        return "null"
    return '"%s"' % v if type(v) is str else str(v)


class _Profile:
    """The expensive, shareable part of a contact: names, address, maps, custom values.

    A contact document = its profile's static fields + per-contact values (id,
    email, times, lists, oddities).  For serving, the profile also keeps a
    %-format template of the whole encoded document, so a contact's JSON is one
    string format instead of a dict build plus a JSON encode.
    """

    __slots__ = ("fields", "email", "visit", "conversion", "has_conversion", "mail_fracs",
                 "mail_layout", "mail_args", "custom", "late_json", "_templates")

    def __init__(self, fields, email, visit, conversion, has_conversion, mail, mail_keys,
                 custom):
        self.fields = fields            # static fields, PascalCase
        self.email = email              # '%d' format: the index makes each email unique
        self.visit = visit              # first visit as a fraction of created..updated, or None
        self.conversion = conversion    # conversion as a fraction of visit..updated, or None
        self.has_conversion = has_conversion  # False: first_conversion_at key absent
        # mail: ((mail id, fraction of lifetime, opened, clicked, rare key or None), ...)
        self.mail_fracs = tuple(m[1] for m in mail)
        # mail_layout: ((mail_* key, ((mail index, mail id, ms after receipt), ...)), ...)
        layout = []
        for key in mail_keys:
            entries = []
            for k, (mail_id, _, opened, clicked, rare) in enumerate(mail):
                offset = {"mail_received": 0, "mail_opened": 3600000 if opened else None,
                          "mail_clicked": 3660000 if clicked else None}.get(
                              key, 1000 if rare == key else None)
                if offset is not None:
                    entries.append((k, mail_id, offset))
            layout.append((key, tuple(entries)))
        self.mail_layout = tuple(layout)
        self.mail_args = tuple((k, off) for _, entries in layout for k, _, off in entries)
        self.custom = custom            # custom_fields entries
        self.late_json = ("," if custom else "") + _encode(_LATE_FIELD)
        self._templates = [None, None]  # [PascalCase, snake_case]

    def custom_fields(self, late):
        """Fresh custom_fields entries, with the undiscovered 'Late Field' if late."""
        out = [dict(c) for c in self.custom]
        if late:
            out.append(dict(_LATE_FIELD))
        return out

    def mail_maps(self, times):
        """{mail_* key: {mail id: epoch ms}} given each mail's receipt time."""
        return {key: {mail_id: times[k] + off for k, mail_id, off in entries}
                for key, entries in self.mail_layout}

    def template(self, snake):
        """The encoded document with %-slots, in this order: contact_id, email,
        first_visit_at, [first_conversion_at,] lists, each mail time, late field,
        extra note, created_at, updated_at.  Built once per spelling."""
        t = self._templates[snake]
        if t is None:
            fields = _snake(self.fields) if snake else self.fields
            out = ['{"contact_id":"%s","', "email" if snake else "Email", '":"%s",',
                   _encode(fields)[1:-1].replace("%", "%%"), ',"first_visit_at":%s']
            if self.has_conversion:
                out.append(',"first_conversion_at":%s')
            out.append(',"lists":[%s]')
            for key, entries in self.mail_layout:
                out.append(',"%s":{%s}' % (key, ",".join('"%s":%%d' % e[1] for e in entries)))
            out += (',"custom_fields":', _encode(self.custom)[:-1].replace("%", "%%"), "%s]",
                    '%s,"created_at":%s,"updated_at":%s}')
            t = self._templates[snake] = "".join(out)
        return t


class _Group:
    """A list or smart segment: membership is a hash threshold plus removals."""

    def __init__(self, group_id, title, salt, share):
        self.id = group_id
        self.title = title
        self.salt = salt
        self.threshold = int(share * (1 << 64))
        self.removed = set()   # contact indexes explicitly taken out
        self.members = None    # array('I') of sorted indexes, built on first use

    def is_member(self, i):
        return (self.threshold and mix64(self.salt ^ i) < self.threshold
                and i not in self.removed)


class Page:
    """One page of a contacts endpoint: contact indexes, total, next bookmark or None."""

    __slots__ = ("indexes", "total", "bookmark")

    def __init__(self, indexes, total, bookmark):
        self.indexes = indexes
        self.total = total
        self.bookmark = bookmark


class Dataset:
    """The sandbox's contacts, lists, smart segments and custom fields.

    Thread-safe: mutations and page/membership computations take one lock;
    documents are generated outside it from immutable profiles and override
    dicts that are replaced, never edited in place.
    """

    def __init__(self, contacts=250, lists=3, segments=2, seed=1, awkward_ids=False):
        if not 0 <= int(contacts) < 1 << 31:
            raise ValueError("contacts out of range")
        self.seed = int(seed)
        self._count = int(contacts)
        self._salt = mix64(self.seed * 0x9E3779B97F4A7C15 + 17)
        self._id_salt = self._salt & _M32
        self._overrides = {}   # index -> {"touch": n, "updated_ms": ms} or {"base": (c, u)}
        self._clock_ms = _UPDATED_END  # mutations stamp times after every generated one
        self._touch_round = 0
        self._lock = threading.RLock()
        self._deleted = set()  # indexes of deleted contacts (stub, see delete_contacts)
        self._live = None      # array('I') of live indexes once anything was deleted
        self._awkward_ids = bool(awkward_ids)
        # Replaced wholesale on change (copy-on-write) so readers can iterate freely.
        self._lists = {}
        for j in range(lists):
            g = self._make_group("list", j, _LIST_SHARES, _LIST_TITLES)
            self._lists[g.id] = g
        self._segments = {}
        for j in range(segments):
            g = self._make_group("segment", j, _SEGMENT_SHARES, _SEGMENT_TITLES)
            self._segments[g.id] = g
        self._mail_ids = tuple(
            _uuid(mix64(self._salt + 7000 + k), mix64(self._salt + 8000 + k)).lower()
            for k in range(24))
        self._profiles = [None] * _PROFILES

    # ----- identifiers -------------------------------------------------------

    def _make_group(self, kind, j, shares, titles):
        salt = mix64(self._salt ^ mix64((1 if kind == "list" else 2) * 1000003 + j))
        if kind == "list":
            gid = "contactlist_" + _uuid(salt, mix64(salt + 1))
        else:
            # Real segment ids look like 'contactlist_sseg' + a creation time in ms.
            gid = "contactlist_sseg%d" % (1420070400000 + salt % 10**11)
        if self._awkward_ids and j == 0:
            # Stub of issue-8's awkward_ids: characters a URL path must escape.
            gid = ("contactlist_odd/ id%?#é" if kind == "list" else "contactlist_ssegodd/ id%?#é")
        title = titles[j % len(titles)]
        if j >= len(titles):
            title = "%s %d" % (title, j // len(titles) + 1)
        return _Group(gid, title, salt, shares[j % len(shares)])

    def _contact_id(self, i):
        """'person_' + 32 hex digits, UUID-shaped; the last 8 encode i (scrambled)."""
        h = mix64(self._salt ^ (i * 0x2545F4914F6CDD1D))
        return "person_%08X-%04X-%04X-%04X-%04X%08X" % (
            h >> 32, h >> 16 & 0xFFFF, h & 0xFFFF, h >> 8 & 0xFFFF, h >> 40 & 0xFFFF,
            _scramble(i, self._id_salt))

    def index_of(self, contact_id):
        """Contact id -> index, or None if it is not a contact of this dataset."""
        if not isinstance(contact_id, str) or len(contact_id) != 43 \
                or not contact_id.startswith("person_"):
            return None
        try:
            i = _unscramble(int(contact_id[-8:], 16), self._id_salt)
        except ValueError:
            return None
        if i >= self._count or self._contact_id(i) != contact_id or i in self._deleted:
            return None
        return i

    def __len__(self):
        return self._count - len(self._deleted)

    # ----- documents ---------------------------------------------------------

    def _profile(self, k):
        p = self._profiles[k]
        if p is None:
            p = self._profiles[k] = self._build_profile(k)
        return p

    def _build_profile(self, k):
        rng = random.Random(mix64(self._salt ^ (0xA5A5 + k * 0x9E3779B97F4A7C15)))
        r = rng.random
        fi = int(r() * len(_FIRST))
        li = int(r() * len(_LAST))
        company, domain = _COMPANIES[int(r() * len(_COMPANIES))]
        street, city, state, postal, country = _ADDRESSES[int(r() * len(_ADDRESSES))]
        first, last = _FIRST[fi], _LAST[li]
        slug = _FIRST_SLUGS[fi] + "." + _LAST_SLUGS[li]
        phone = "+1 415 555 %04d" % int(r() * 10000)
        fields = {
            "FirstName": first,
            "LastName": last,
            "Name": first + " " + last if r() >= 0.02 else None,
            "Salutation": _SALUTATIONS[int(r() * len(_SALUTATIONS))],
            "Company": company,
            "NumberOfEmployees": (1, 5, 12, 50, 250, 1200, 10000)[int(r() * 7)],
            "Title": _TITLES[int(r() * len(_TITLES))],
            "Industry": _INDUSTRIES[int(r() * len(_INDUSTRIES))],
            "Phone": phone,
            "MobilePhone": "+44 7700 9%05d" % int(r() * 100000),
            "Fax": phone,
            "Website": "https://www." + domain,
            "MailingStreet": "%d %s" % (1 + int(r() * 999), street),
            "MailingCity": city,
            "MailingState": state,
            "MailingPostalCode": postal,
            "MailingCountry": country,
            "LeadSource": _LEAD_SOURCES[int(r() * len(_LEAD_SOURCES))],
            "Status": _STATUSES[int(r() * len(_STATUSES))],
            "LinkedIn": "https://www.linkedin.com/in/" + slug,
            "Twitter": "@" + _LAST_SLUGS[li] + str(int(r() * 100)),
            "Unsubscribed": r() < 0.1,
            "owner_name": _OWNERS[int(r() * len(_OWNERS))],
        }
        # Some fields null, some missing: the tap must not assume presence.
        for key in _OPTIONAL:
            u = r()
            if u < 0.06:
                fields[key] = None
            elif u < 0.12:
                del fields[key]
        fields["company_priority"] = r() < 0.2
        fields["type"] = "Contact"
        fields["anywhere_page_visits"] = _bool_map(r, _PAGES, 5)
        fields["anywhere_form_submits"] = _bool_map(r, _FORMS, 3)
        fields["anywhere_utm"] = _bool_map(r, _UTMS, 3)

        visit = r() if r() < 0.7 else None
        conversion = r() if visit is not None and r() < 0.5 else None
        has_conversion = r() >= 0.1
        mail = []
        start = int(r() * len(self._mail_ids))
        for n in range(int(r() * 6)):
            opened = r() < 0.6
            clicked = opened and r() < 0.4
            rare = _MAIL_KEYS[3 + int(r() * 4)] if r() < 0.05 else None
            mail.append((self._mail_ids[(start + n) % len(self._mail_ids)], r(),
                         opened, clicked, rare))
        mail_keys = tuple(key for key in _MAIL_KEYS
                          if key != "mail_complained" or r() >= 0.05)
        return _Profile(fields, "%s%%d@%s" % (slug, domain), visit, conversion,
                        has_conversion, tuple(mail), mail_keys, _custom_values(r))

    def _parts(self, i):
        """Contact i's per-contact values, shared by _doc and doc_json."""
        h = mix64(self._salt + i)
        p = self._profile(h & (_PROFILES - 1))
        h2 = mix64(h ^ 0x5851F42D4C957F2D)
        flags = mix64(h2 ^ 0x14057B7EF767814F)
        # updated_at 2019..2025, created_at before it; other times are fractions between.
        updated = _UPDATED_MIN + int((h >> 11) * _INV53 * (_UPDATED_END - _UPDATED_MIN))
        created = _CREATED_MIN + int((h2 >> 11) * _INV53 * (updated - _CREATED_MIN))
        ov = self._overrides.get(i)
        if ov is not None and "base" in ov:   # added contacts come after everything else
            created, updated = ov["base"]
        span = updated - created

        visit = conversion = None
        if p.visit is not None:
            v = created + int(p.visit * span)
            visit = iso_ms(v)
            if p.conversion is not None:
                conversion = iso_ms(v + int(p.conversion * (updated - v)))
        lists = [g.id for g in self._lists.values() if g.is_member(i)]
        mail_times = [created + int(f * span) for f in p.mail_fracs]

        touched = 0
        if ov is not None:
            updated = ov.get("updated_ms", updated)
            touched = ov.get("touch", 0)
        if (flags & 0xFFFF) < 1966:                # ~3%: epoch-ms integers, not ISO strings
            created = created if flags >> 16 & 1 else iso_ms(created)
        else:
            created, updated = iso_ms(created), iso_ms(updated)
        snake = (flags >> 17 & 0xFFFF) < 1966      # ~3%: snake_case standard fields
        extra = (flags >> 33 & 0xFFFF) < 1311      # ~2%: an undocumented extra field
        late = (flags >> 49 & 0x7FFF) < 983        # ~3%: a custom field unknown to discovery
        return (p, self._contact_id(i), p.email % i, visit, conversion, lists, mail_times,
                late, extra, created, updated, snake, touched)

    def _doc(self, i):
        """Contact i's raw document as a fresh dict (nothing shared with the profile)."""
        (p, cid, email, visit, conversion, lists, mail_times,
         late, extra, created, updated, snake, touched) = self._parts(i)
        doc = {"contact_id": cid, "Email": email}
        doc.update(p.fields)
        for key in ("anywhere_page_visits", "anywhere_form_submits", "anywhere_utm"):
            doc[key] = dict(doc[key])
        doc["first_visit_at"] = visit
        if p.has_conversion:
            doc["first_conversion_at"] = conversion
        doc["lists"] = lists
        doc.update(p.mail_maps(mail_times))
        doc["custom_fields"] = p.custom_fields(late)
        if extra:
            doc["ExtraNote"] = _EXTRA_NOTE
        doc["created_at"] = created
        doc["updated_at"] = updated
        if touched:  # a visible change so upserts can be checked
            doc["Title"] = "%s (touched %d)" % (doc.get("Title") or "Untitled", touched)
        return _snake(doc) if snake else doc

    def doc_json(self, i):
        """Contact i's document as JSON text, equal to encoding self._doc(i).

        Fills the profile's template: every per-contact value is ASCII-safe
        (ids, emails, timestamps, integers), so no escaping is needed.
        """
        (p, cid, email, visit, conversion, lists, mail_times,
         late, extra, created, updated, snake, touched) = self._parts(i)
        if touched:  # rare: Title changes, so the template does not apply
            return _encode(self._doc(i))
        args = [cid, email, _jtext(visit)]
        if p.has_conversion:
            args.append(_jtext(conversion))
        args.append('"%s"' % '","'.join(lists) if lists else "")
        args += [mail_times[k] + off for k, off in p.mail_args]
        args += (p.late_json if late else "", _EXTRA_JSON if extra else "",
                 _jtext(created), _jtext(updated))
        return p.template(snake) % tuple(args)

    # ----- reads the tests and the server use --------------------------------

    def contact(self, contact_id):
        """The current raw document of one contact (KeyError if unknown)."""
        i = self.index_of(contact_id)
        if i is None:
            raise KeyError(contact_id)
        return self._doc(i)

    def iter_contacts(self):
        """Every raw document, in API order, generated one at a time."""
        i = 0
        while i < self._count:
            if i not in self._deleted:
                yield self._doc(i)
            i += 1

    def contact_ids(self):
        return [self._contact_id(i) for i in range(self._count) if i not in self._deleted]

    def lists(self):
        return [{"list_id": g.id, "title": g.title} for g in self._lists.values()]

    def segments(self):
        return [{"segment_id": g.id, "title": g.title} for g in self._segments.values()]

    def custom_field_definitions(self):
        return [{"name": n, "fieldType": t} for n, t in _CUSTOM_FIELDS]

    def list_members(self, list_id):
        """Member contact ids of a live list in API order (KeyError if unknown/deleted)."""
        return [self._contact_id(i) for i in self._members(self._lists[list_id])]

    def segment_members(self, segment_id):
        return [self._contact_id(i) for i in self._members(self._segments[segment_id])]

    def _members(self, group):
        """Sorted member indexes, computed once per group (one cheap hash per contact)."""
        with self._lock:
            if group.members is None:
                group.members = array("I", (i for i in range(self._count) if group.is_member(i)))
            return group.members

    # ----- pages -------------------------------------------------------------

    def contacts_page(self, bookmark=None):
        """The Page of /contacts[/{bookmark}] (KeyError for an unknown bookmark)."""
        with self._lock:
            if self._live is not None:
                live = self._live
                pos = bisect_right(live, self._after(bookmark) - 1) if bookmark is not None else 0
                idx = live[pos:pos + PAGE_SIZE].tolist()
                more = pos + PAGE_SIZE < len(live)
                return Page(idx, len(live), self._contact_id(idx[-1]) if more else None)
            start = self._after(bookmark)
            end = min(start + PAGE_SIZE, self._count)
            more = end < self._count
            return Page(range(start, end), self._count,
                        self._contact_id(end - 1) if more else None)

    def list_page(self, list_id, bookmark=None):
        """The Page of /list/{id}/contacts[/{bookmark}] (KeyError: unknown list or bookmark)."""
        return self._group_page(self._lists[list_id], bookmark)

    def segment_page(self, segment_id, bookmark=None):
        return self._group_page(self._segments[segment_id], bookmark)

    def _group_page(self, group, bookmark):
        with self._lock:
            members = self._members(group)
            # Resume right after the bookmarked contact: O(log n + page), not a rescan.
            pos = bisect_right(members, self._after(bookmark) - 1) if bookmark is not None else 0
            idx = members[pos:pos + PAGE_SIZE].tolist()
            more = pos + PAGE_SIZE < len(members)
            return Page(idx, len(members), self._contact_id(idx[-1]) if more else None)

    def _after(self, bookmark):
        """Index of the first contact after the bookmark (KeyError if unknown)."""
        if bookmark is None:
            return 0
        i = self.index_of(bookmark)
        if i is None:
            raise KeyError(bookmark)
        return i + 1

    # ----- mutations ---------------------------------------------------------

    def _tick(self):
        """The time a mutation is stamped with: the wall clock, as the real API
        stamps updated_at (so it agrees with the HTTP Date header), kept
        strictly increasing and after every generated updated_at."""
        self._clock_ms = max(self._clock_ms + 1, int(time.time() * 1000))
        return self._clock_ms

    def _indexes(self, contact_ids):
        out = []
        for cid in contact_ids:
            i = self.index_of(cid)
            if i is None:
                raise KeyError(cid)
            out.append(i)
        return out

    def touch(self, contact_ids=None, count=None):
        """Bump updated_at past every other one and change Title; returns the ids touched.

        Without contact_ids, touches `count` (default 1) contacts picked
        deterministically across the whole order.
        """
        with self._lock:
            if contact_ids is not None:
                idx = self._indexes(contact_ids)
            else:
                n = min(1 if count is None else int(count), self._count)
                self._touch_round += 1
                pick = random.Random(mix64(self._salt ^ (self._touch_round * 7919)))
                idx = sorted(pick.sample(range(self._count), n))
            stamp = self._tick()
            for i in idx:
                ov = dict(self._overrides.get(i, ()))  # replace, never edit in place
                ov["touch"] = ov.get("touch", 0) + 1
                ov["updated_ms"] = stamp
                self._overrides[i] = ov
            return [self._contact_id(i) for i in idx]

    def add_contacts(self, count):
        """Append new contacts at the end of the order, newest updated_at; returns their ids."""
        count = int(count)
        if count < 0:
            raise ValueError("count must be >= 0")
        with self._lock:
            first = self._count
            new = range(first, first + count)
            for i in new:
                stamp = self._tick()
                self._overrides[i] = {"base": (stamp - 86400000, stamp)}
            groups = list(self._lists.values()) + list(self._segments.values())
            for group in groups:
                if group.members is not None:
                    group.members.extend(i for i in new if group.is_member(i))
            self._count = first + count
            if self._live is not None:
                self._live.extend(new)
            return [self._contact_id(i) for i in new]

    def delete_contacts(self, contact_ids):
        """Stub of issue-8's interface: the contacts vanish from /contacts, every
        list's and segment's pages, and dump()."""
        with self._lock:
            gone = set(self._indexes(contact_ids))
            self._deleted |= gone
            self._live = array("I", (i for i in range(self._count) if i not in self._deleted))
            for group in list(self._lists.values()) + list(self._segments.values()):
                group.removed = group.removed | gone
                if group.members is not None:
                    group.members = array("I", (i for i in group.members if i not in gone))

    def delete_list(self, list_id):
        """The list vanishes from /lists, its endpoint and every contact's `lists`."""
        with self._lock:
            if list_id not in self._lists:
                raise KeyError(list_id)
            self._lists = {k: g for k, g in self._lists.items() if k != list_id}

    def remove_from_list(self, list_id, contact_ids):
        self._remove(self._lists[list_id], contact_ids)

    def remove_from_segment(self, segment_id, contact_ids):
        self._remove(self._segments[segment_id], contact_ids)

    def _remove(self, group, contact_ids):
        with self._lock:
            gone = set(self._indexes(contact_ids))
            group.removed = group.removed | gone
            if group.members is not None:
                group.members = array("I", (i for i in group.members if i not in gone))

    # ----- whole-dataset view ------------------------------------------------

    def dump(self):
        """Everything as one JSON-able dict (fine for small datasets)."""
        with self._lock:
            return {
                "contacts": list(self.iter_contacts()),
                "lists": self.lists(),
                "segments": self.segments(),
                "list_members": {g: self.list_members(g) for g in self._lists},
                "segment_members": {g: self.segment_members(g) for g in self._segments},
                "custom_fields": self.custom_field_definitions(),
            }
