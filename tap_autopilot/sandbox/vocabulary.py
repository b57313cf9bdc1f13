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
