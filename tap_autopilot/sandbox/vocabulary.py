"""The fixed word pools the sandbox's documents are drawn from: names (many
scripts, emoji, quotes), companies, addresses, URLs, list and segment titles,
and the account's custom field definitions."""

FIRST = (
    "Ana",
    "José",
    "Zoë",
    "Łukasz",
    "Søren",
    "Chloé",
    "François",
    "Đorđe",
    "Jürgen",
    "Ngọc",
    "美咲",
    "伟",
    "Ольга",
    "Αλέξης",
    "Siobhán",
    "Renée",
    "Mateo",
    "Priya",
    "Kwame",
    "Zoë 🌸",
    'Ann "Annie"',
    "Mary-Jane",
    "Öykü",
    "Håkon",
    "Li",
    "Sam",
)
LAST = (
    "Smith",
    "García",
    "Müller",
    "Kowalski",
    "O'Brien",
    "Nguyễn",
    "佐藤",
    "王",
    "Иванова",
    "Παπαδόπουλος",
    "Ó Súilleabháin",
    "da Silva",
    "Johansson",
    "Núñez",
    "D'Angelo",
    "Lee",
    "Okafor",
    "Schröder",
    "Tanaka 🚀",
    "van der Berg",
)
COMPANIES = (
    ("Acme Corp", "acme.example"),
    ("Globex", "globex.example"),
    ("Initech", "initech.example"),
    ("Umbrella GmbH", "umbrella.example"),
    ("Société Générale des Tests", "sgt.example"),
    ("株式会社サンプル", "sample.example"),
    ("Wayne & Sons", "wayne.example"),
    ("Hooli", "hooli.example"),
    ("Ærø Shipping", "aero.example"),
    ("Pied Piper", "piedpiper.example"),
)
TITLES = (
    "CEO",
    "CTO",
    "VP Marketing",
    "Growth Lead",
    "Engineer",
    "Designer",
    "Directrice commerciale",
    "Product Manager",
    "Founder",
    "Analyst",
)
INDUSTRIES = ("Software", "Retail", "Finance", "Healthcare", "Education", "Media", "Manufacturing", "Non-profit")
ADDRESSES = (  # (street suffix, city, state, postal code, country)
    ("Market St", "San Francisco", "CA", "94103", "United States"),
    ("Broadway", "New York", "NY", "10012", "United States"),
    ("Baker Street", "London", None, "NW1 6XE", "United Kingdom"),
    ("Rue de Rivoli", "Paris", "Île-de-France", "75001", "France"),
    ("Friedrichstraße", "Berlin", "Berlin", "10117", "Germany"),
    ("George St", "Sydney", "NSW", "2000", "Australia"),
    ("銀座", "東京", "東京都", "104-0061", "Japan"),
    ("Avenida Paulista", "São Paulo", "SP", "01310-100", "Brazil"),
)
LEAD_SOURCES = ("Web", "Referral", "Webinar", "Trade Show", "Partner", "Cold Call")
STATUSES = ("Open", "Contacted", "Qualified", "Customer", "Churned")
SALUTATIONS = ("Mr.", "Ms.", "Mrs.", "Dr.", "Mx.", "Prof.")
OWNERS = ("Alice Owner", "Bob Owner", "Chantal Propriétaire", "陈经理")
COLORS = ("red", "green", "blue", "chartreuse", "bleu ciel", "紫", "🟧 orange")
PAGES = (
    "https://www.acme.example/",
    "https://www.acme.example/pricing",
    "https://www.acme.example/blog/2019/05/hello-world",
    "https://www.acme.example/features?tab=journeys",
    "http://acme.example/signup#step-2",
    "https://docs.acme.example/api/v1/contacts",
    "https://www.acme.example/über-uns",
    "https://www.acme.example/contact.html",
)
FORMS = (
    "https://www.acme.example/signup",
    "https://www.acme.example/demo-request",
    "https://www.acme.example/newsletter",
    "https://www.acme.example/ebook?id=42",
)
UTMS = (
    "utm_source=google&utm_medium=cpc&utm_campaign=brand",
    "utm_source=newsletter&utm_medium=email",
    "utm_source=twitter&utm_medium=social&utm_content=launch",
    "utm_source=partner&utm_medium=referral&utm_term=crm tools",
)
LIST_TITLES = (
    "Newsletter Subscribers",
    "Trial Users — Q3",
    "Événements 2024",
    "客户名单",
    "VIP 🌟",
    "Churned (do not email)",
)
SEGMENT_TITLES = ("Engaged last 30 days", "Never opened", "Big companies (>1000)", "Paris & Berlin")


LIST_SLUGS = ("build-your-journey", "newsletter-subscribers", "trial-users", "webinar-2016")

MAIL_KEYS = (
    "mail_received",
    "mail_opened",
    "mail_clicked",
    "mail_bounced",
    "mail_complained",
    "mail_unsubscribed",
    "mail_hardbounced",
)

# (name, fieldType) of the custom fields every account has.
CUSTOM_FIELDS = (
    ("Favorite Color", "string"),
    ("Seats", "integer"),
    ("Lifetime Value", "float"),
    ("Is Partner", "boolean"),
    ("Renewal Date", "date"),
)
# Added by the recordings-like default: a non-ASCII name, a name that collides
# with "Favorite Color" once snake-cased, and a type the API notes do not list.
RECORDINGS_CUSTOM_FIELDS = CUSTOM_FIELDS + (
    ("Größe", "float"),
    ("favorite-color", "string"),
    ("Region", "picklist"),
)
# A custom field some contacts carry that the definitions endpoint never lists.
LATE_FIELD = {"kind": "Late Field", "value": "added after discovery", "fieldType": "string"}

# The awkward_values knob: values real accounts hold that no warehouse takes as
# they are. Two custom fields whose names agree in far more than their first 63 bytes.
LONG_NAMED_FIELDS = (
    ("Preferred channel for the quarterly business review and renewal call (primary contact)", "string"),
    ("Preferred channel for the quarterly business review and renewal call (backup contact)", "string"),
)
# A list title with a NUL in it (a JSON \u0000 escape).
NUL_TITLE_SUFFIX = "\x00 (imported)"
# Per awkward contact (the first ones created): members as raw JSON text, which replace the
# document's own, and custom_fields entries (kind -> raw JSON value) added to (or replacing) its own.
AWKWARD_CONTACTS = (
    (
        {"FirstName": '"Ann\\ud83d"', "NumberOfEmployees": "100000000000000000000"},
        {
            "Seats": "15551234567890123456789",
            "Lifetime Value": "1e400",
            LONG_NAMED_FIELDS[0][0]: '"email"',
            LONG_NAMED_FIELDS[1][0]: '"phone"',
        },
    ),
    (
        # "M\xfcller" in Latin-1: the byte 0xFC is not UTF-8 (served through surrogateescape).
        {"LastName": '"M\udcfcller"', "Company": '"Acme\\u0000 Corp"'},
        {"Favorite Color": '"Blue\\u0000"', LONG_NAMED_FIELDS[0][0]: '"phone"', LONG_NAMED_FIELDS[1][0]: '"email"'},
    ),
)
