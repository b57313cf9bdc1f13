"""Hashing and identifiers: every id the sandbox serves is derived from
(seed, index), in the forms the API was seen to use.

Contact ids encode their index (scrambled) in their last 8 hex digits, so an
id resolves to its contact without a lookup table, whatever its form:
'person_9EAF39E4-9AEC-...' (upper-case UUID), the same in lower case, and
'person_AP2-9cbf7ac0-eec5-...'.
"""

from .vocabulary import LIST_SLUGS

_M32 = 0xFFFFFFFF
_M64 = 0xFFFFFFFFFFFFFFFF


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


def scramble(i, salt):
    x = ((i ^ salt) * _A) & _M32
    x ^= x >> 16
    return (x * _B) & _M32


def unscramble(x, salt):
    x = (x * _B_INV) & _M32
    x ^= x >> 16
    return ((x * _A_INV) & _M32) ^ salt


def uuid(h1, h2):
    """128 bits as an upper-case UUID-shaped string."""
    h = "%016X%016X" % (h1 & _M64, h2 & _M64)
    return "%s-%s-%s-%s-%s" % (h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])


_UPPER = "person_%08X-%04X-%04X-%04X-%04X%08X"
_LOWER = "person_%08x-%04x-%04x-%04x-%04x%08x"
_AP2 = "person_AP2-%08x-%04x-%04x-%04x-%04x%08x"


class ContactIds:
    """Contact index <-> contact id for one dataset."""

    def __init__(self, salt):
        self._salt = salt
        self._id_salt = salt & _M32

    def id(self, i):
        h = mix64(self._salt ^ (i * 0x2545F4914F6CDD1D))
        form = h >> 61  # 0-4: upper-case UUID, 5: lower case, 6-7: AP2
        template = _UPPER if form < 5 else _LOWER if form == 5 else _AP2
        return template % (
            h >> 32,
            h >> 16 & 0xFFFF,
            h & 0xFFFF,
            h >> 8 & 0xFFFF,
            h >> 40 & 0xFFFF,
            scramble(i, self._id_salt),
        )

    def index(self, contact_id):
        """The index an id encodes, or None if it is not one of ours (not checked
        against the dataset's size: the caller does that)."""
        if not isinstance(contact_id, str) or not contact_id.startswith("person_") or len(contact_id) < 43:
            return None
        try:
            i = unscramble(int(contact_id[-8:], 16), self._id_salt)
        except ValueError:
            return None
        return i if self.id(i) == contact_id else None


def mail_id(salt, k):
    """'batchdelivery_<uuid>_<ms>-<uuid>', the long delivery ids of mail_* maps."""
    a = uuid(mix64(salt + 7000 + k), mix64(salt + 8000 + k)).lower()
    b = uuid(mix64(salt + 9000 + k), mix64(salt + 9500 + k)).lower()
    return "batchdelivery_%s_%d-%s" % (a, 1420070400000 + mix64(salt + 9900 + k) % 10**11, b)


def dense_mail_id(salt, k):
    """The dense shape's short mail ids (a lower-case UUID)."""
    return uuid(mix64(salt + 7000 + k), mix64(salt + 8000 + k)).lower()


def list_id(salt, j, recordings):
    """List ids in the seen forms: UUID, 40 hex digits, a slug."""
    form = j % 3 if recordings else 0
    if form == 0:
        return "contactlist_" + uuid(salt, mix64(salt + 1))
    if form == 1:
        return "contactlist_%016x%016x%08x" % (salt, mix64(salt + 1), mix64(salt + 2) & _M32)
    slug = LIST_SLUGS[(j // 3) % len(LIST_SLUGS)]
    return "contactlist_%s" % slug if j < 3 * len(LIST_SLUGS) else "contactlist_%s-%d" % (slug, j)


def segment_id(salt, j, recordings):
    """Segment ids in both seen forms: 'contactlist_sseg' + a time in ms, or + a UUID."""
    if recordings and j % 2:
        return "contactlist_sseg" + uuid(salt, mix64(salt + 1))
    return "contactlist_sseg%d" % (1420070400000 + salt % 10**11)


# Ids that must be percent-escaped in a URL path (the awkward_ids knob).
AWKWARD_LIST_ID = "contactlist_odd/ id%?#é"
AWKWARD_SEGMENT_ID = "contactlist_ssegodd/ id%?#é"
