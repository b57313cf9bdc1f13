"""The sandbox's account: contacts, lists, smart segments, custom fields, and
the pages the API serves them in. Deterministic per seed, lazy, thread-safe.

Nothing per contact is generated up front: contact ``i``'s document is
rebuilt on demand from ``(seed, i)`` plus a small override dict written by
mutations, so a 100k-contact dataset costs next to no memory. The one
per-contact structure is the API order: like the live API, pages are in
ascending `contact_id` order (as strings), which is unrelated to creation, so
the order is an array of indexes (4 bytes a contact), sorted once on first
use; a contact added later is inserted where its id falls, often before a
scan's saved position.
"""

import json
import random
import threading
import time
from array import array

from . import documents
from .documents import CREATED_MIN, UPDATED_END, UPDATED_MIN
from .groups import LIST_SHARES, SEGMENT_SHARES, new_group
from .ids import AWKWARD_LIST_ID, AWKWARD_SEGMENT_ID, ContactIds, dense_mail_id, list_id, mail_id, mix64, segment_id
from .paging import page_after, position_after
from .timestamps import iso_ms, rfc1123
from .vocabulary import AWKWARD_CONTACTS, LIST_TITLES, LONG_NAMED_FIELDS, NUL_TITLE_SUFFIX, SEGMENT_TITLES

_PROFILES = 1024  # cached document profiles per dataset (power of two)
_INV53 = 1.0 / (1 << 53)

# Recordings shape, per contact (out of 65536): the sparsest documents
# ({contact_id, created_at, api_originated}), documents without updated_at,
# and RFC 1123 timestamps.
_MINIMAL = 5243  # 8%
_NO_UPDATED = 7864  # a further 12%: one contact in five has no updated_at
_RFC1123 = 3932  # 6%
_MS_FRACTION = 6554  # 10% keep milliseconds; the others are '...:SS.000Z'


class Dataset:
    """The sandbox's contacts, lists, smart segments and custom fields.

    Shape knobs: ``dense=True`` gives every document every key with typed
    values (the shape first assumed) instead of the recordings-like default;
    ``epoch_ms_share`` and ``snake_case_share`` (0 by default: no source shows
    them) give that share of contacts epoch-ms created_at/updated_at and
    snake_case standard fields; ``awkward_ids`` gives one list and one segment
    an id that must be percent-escaped in a URL path; ``awkward_values`` serves
    values real accounts hold that warehouses refuse as they are: the
    first contacts created carry a lone surrogate escape in FirstName, bytes that
    are not UTF-8 in LastName, \u0000 in Company and a custom field value, 10^20
    employees, a 23-digit integer in the integer custom field and 1e400 in the float
    one (vocabulary.AWKWARD_CONTACTS); the first list's title holds a NUL; two more
    custom fields have names alike in their first 70 characters.

    Thread-safe: mutations and page computations take one lock; documents are
    generated outside it from immutable profiles and override dicts that are
    replaced, never edited in place.
    """

    def __init__(
        self,
        contacts=250,
        lists=3,
        segments=2,
        seed=1,
        dense=False,
        epoch_ms_share=0.0,
        snake_case_share=0.0,
        awkward_ids=False,
        awkward_values=False,
    ):
        if not 0 <= int(contacts) < 1 << 31:
            raise ValueError("contacts out of range")
        for name, share in (("epoch_ms_share", epoch_ms_share), ("snake_case_share", snake_case_share)):
            if not 0 <= float(share) <= 1:
                raise ValueError("%s must be between 0 and 1" % name)
        self.seed = int(seed)
        self.recordings = not dense
        self.awkward_values = bool(awkward_values)
        self._epoch = int(float(epoch_ms_share) * 65536)
        self._snake = int(float(snake_case_share) * 65536)
        self._allocated = int(contacts)  # indexes handed out so far (deleted ones included)
        self._salt = mix64(self.seed * 0x9E3779B97F4A7C15 + 17)
        self._ids = ContactIds(self._salt)
        # Many contacts share an updated_at to the second (bulk imports, 2017's '.000Z'):
        # generated updated_at values are drawn from this many instants.
        self._instants = max(1, int(contacts) // 4)
        self._overrides = {}  # index -> {"touch": n, "updated_ms": ms} or {"added": ms}, and "custom_fields"
        self._deleted = set()
        self._order: array[int] | None = None  # array('I') of live indexes in API order, built on first use
        self._clock_ms = UPDATED_END  # mutations stamp times after every generated one
        self._touch_round = 0
        self._lock = threading.RLock()
        recordings = self.recordings
        # Replaced wholesale on change (copy-on-write) so readers can iterate freely.
        self._lists = {}
        for j in range(lists):
            g = new_group(self._salt, list_id, j, LIST_SHARES, LIST_TITLES, 1, recordings)
            if awkward_ids and j == 0:
                g.id = AWKWARD_LIST_ID
            if awkward_values and j == 0:
                g.title += NUL_TITLE_SUFFIX
            self._lists[g.id] = g
        self._segments = {}
        for j in range(segments):
            g = new_group(self._salt, segment_id, j, SEGMENT_SHARES, SEGMENT_TITLES, 2, recordings)
            if awkward_ids and j == 0:
                g.id = AWKWARD_SEGMENT_ID
            self._segments[g.id] = g
        self._mail_ids = tuple((mail_id if recordings else dense_mail_id)(self._salt, k) for k in range(24))
        self._profiles = [None] * _PROFILES
        self._custom_definitions = documents.custom_field_definitions(
            self._salt, recordings, LONG_NAMED_FIELDS if awkward_values else ()
        )

    # ----- identifiers and order ------------------------------------------------

    def _contact_id(self, i):
        return self._ids.id(i)

    def index_of(self, contact_id):
        """Contact id -> index, or None if it is not a live contact of this dataset."""
        i = self._ids.index(contact_id)
        if i is None or i >= self._allocated or i in self._deleted:
            return None
        return i

    def position_of(self, contact_id):
        """Where a live contact stands in the API order (0-based; the index into
        contact_ids()), or None if it is not a live contact."""
        if self.index_of(contact_id) is None:
            return None
        with self._lock:
            return position_after(self._api_order(), contact_id, self._contact_id) - 1

    def __len__(self):
        return len(self._api_order())

    def _api_order(self) -> "array[int]":  # quoted: array is not subscriptable at run time before 3.12
        """Live indexes in ascending contact id order (sorted once, then maintained)."""
        order = self._order
        if order is None:
            with self._lock:
                if self._order is None:
                    self._order = array("I", sorted(range(self._allocated), key=self._contact_id))
                order = self._order
        return order

    # ----- documents ------------------------------------------------------------

    def _profile(self, k):
        p = self._profiles[k]
        if p is None:
            seed = mix64(self._salt ^ (0xA5A5 + k * 0x9E3779B97F4A7C15))
            p = self._profiles[k] = documents.new_profile(seed, self._mail_ids, self.recordings)
        return p

    def doc_json(self, i):
        """Contact i's document as the API sends it (JSON text; the server encodes it
        with surrogateescape, so a lone surrogate U+DC80..U+DCFF in it is a byte that is
        not UTF-8)."""
        text = self._doc_json(i)
        if self.awkward_values and i < len(AWKWARD_CONTACTS):
            text = documents.awkward_json(text, *AWKWARD_CONTACTS[i])
        custom = (self._overrides.get(i) or {}).get("custom_fields")
        return documents.with_custom_fields(text, custom) if custom else text

    def _doc_json(self, i):
        h = mix64(self._salt + i)
        p = self._profile(h & (_PROFILES - 1))
        h2 = mix64(h ^ 0x5851F42D4C957F2D)
        flags = mix64(h2 ^ 0x14057B7EF767814F)
        recordings = self.recordings
        ov = self._overrides.get(i)
        if ov is not None and "added" in ov:  # created through the admin endpoint: now
            created = updated = ov["added"]
        elif recordings:
            # updated_at from a pool of instants, whole seconds mostly; created_at before it.
            slot = (h >> 11) % self._instants
            updated = UPDATED_MIN + (slot * (UPDATED_END - UPDATED_MIN) // self._instants) // 1000 * 1000
            if (flags >> 40 & 0xFFFF) < _MS_FRACTION:
                updated += (h2 & 0x3FF) % 1000
            created = CREATED_MIN + int((h2 >> 11) * _INV53 * (updated - CREATED_MIN)) // 1000 * 1000
        else:
            updated = UPDATED_MIN + int((h >> 11) * _INV53 * (UPDATED_END - UPDATED_MIN))
            created = CREATED_MIN + int((h2 >> 11) * _INV53 * (updated - CREATED_MIN))
        span = updated - created
        cid = self._contact_id(i)
        shape = flags & 0xFFFF
        touched = 0
        if ov is not None:
            touched = ov.get("touch", 0)
            if touched:
                updated = ov["updated_ms"]
        fmt = self._time_format(flags)
        if recordings and shape < _MINIMAL:
            text = documents.minimal_json(cid, fmt(created), flags >> 20 & 1)
            return documents.touched_json(text, touched, fmt(updated), False) if touched else text
        visit = conversion = None
        if p.visit is not None:
            v = created + int(p.visit * span)
            visit = iso_ms(v)
            if p.conversion is not None:
                conversion = iso_ms(v + int(p.conversion * (updated - v)))
        lists = [g.id for g in self._lists.values() if g.is_member(i)]  # not for minimal ones: see _in_group
        mail_times = [created + int(f * span) for f in p.mail_fracs]
        snake = (flags >> 17 & 0xFFFF) < self._snake
        extra = not recordings and (flags >> 33 & 0xFFFF) < 1311  # dense: ~2% carry ExtraNote
        late = (flags >> 49 & 0x7FFF) < 983  # ~3%: a field unknown to discovery
        no_updated = recordings and shape < _MINIMAL + _NO_UPDATED and not touched
        text = documents.document_json(
            p,
            cid,
            None if p.email is None else p.email % i,
            visit,
            conversion,
            lists,
            mail_times,
            late,
            extra,
            fmt(created),
            None if no_updated else fmt(updated),
            snake,
            recordings,
        )
        if touched:
            return documents.touched_json(text, touched, fmt(updated), snake)
        return text

    def _flags(self, i):
        """Contact i's per-contact random bits (the same ones doc_json draws)."""
        h = mix64(self._salt + i)
        return mix64(mix64(h ^ 0x5851F42D4C957F2D) ^ 0x14057B7EF767814F)

    def _in_group(self, group, i):
        """Membership, as the lists of the documents show it: the sparsest
        documents carry no `lists`, so they are on none."""
        return group.is_member(i) and not (self.recordings and self._flags(i) & 0xFFFF < _MINIMAL)

    def _time_format(self, flags):
        """How this contact's created_at/updated_at are written."""
        if (flags >> 24 & 0xFFFF) < self._epoch:
            return int
        if self.recordings and (flags >> 4 & 0xFFFF) < _RFC1123:
            return rfc1123
        return iso_ms

    def _doc(self, i):
        return json.loads(self.doc_json(i))

    # ----- reads the tests and the server use ------------------------------------

    def contact(self, contact_id):
        """The current raw document of one contact (KeyError if unknown)."""
        i = self.index_of(contact_id)
        if i is None:
            raise KeyError(contact_id)
        return self._doc(i)

    def iter_contacts(self):
        """Every raw document, in API order, generated one at a time."""
        for i in self._api_order().tolist():
            if i not in self._deleted:
                yield self._doc(i)

    def contact_ids(self):
        """Every live contact id, in API order."""
        return [self._contact_id(i) for i in self._api_order()]

    def lists(self):
        return [{"list_id": g.id, "title": g.title} for g in self._lists.values()]

    def segments(self):
        return [{"segment_id": g.id, "title": g.title} for g in self._segments.values()]

    def custom_field_definitions(self):
        return [dict(d) for d in self._custom_definitions]

    def list_members(self, list_id):
        """Member contact ids of a live list in API order (KeyError if unknown/deleted)."""
        return [self._contact_id(i) for i in self._members(self._lists[list_id])]

    def segment_members(self, segment_id):
        return [self._contact_id(i) for i in self._members(self._segments[segment_id])]

    def _members(self, group):
        """Member indexes in API order, computed once per group (one cheap hash per contact)."""
        with self._lock:
            if group.members is None:
                group.members = array("I", (i for i in self._api_order() if self._in_group(group, i)))
            return group.members

    # ----- pages -----------------------------------------------------------------

    def contacts_page(self, bookmark=None):
        """The Page of /contacts[/{bookmark}] (KeyError for an unknown bookmark)."""
        with self._lock:
            return self._page(self._api_order(), bookmark)

    def list_page(self, list_id, bookmark=None):
        """The Page of /list/{id}/contacts[/{bookmark}] (KeyError: unknown list or bookmark)."""
        return self._group_page(self._lists[list_id], bookmark)

    def segment_page(self, segment_id, bookmark=None):
        return self._group_page(self._segments[segment_id], bookmark)

    def _group_page(self, group, bookmark):
        self._members(group)
        with self._lock:
            return self._page(group.members, bookmark)

    def _page(self, seq, bookmark):
        if bookmark is not None and self.index_of(bookmark) is None:
            raise KeyError(bookmark)
        return page_after(seq, bookmark, self._contact_id)

    # ----- mutations -------------------------------------------------------------

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
            order = self._api_order()
            if contact_ids is not None:
                idx = self._indexes(contact_ids)
            else:
                n = min(1 if count is None else int(count), len(order))
                self._touch_round += 1
                pick = random.Random(mix64(self._salt ^ (self._touch_round * 7919)))
                idx = [order[p] for p in sorted(pick.sample(range(len(order)), n))]
            stamp = self._tick()
            for i in idx:
                ov = dict(self._overrides.get(i, ()))  # replace, never edit in place
                ov["touch"] = ov.get("touch", 0) + 1
                ov["updated_ms"] = stamp
                self._overrides[i] = ov
            return [self._contact_id(i) for i in idx]

    def set_custom_fields(self, changes):
        """Set custom field values, as an edit in Autopilot does: changes is {contact_id:
        {field name: {"fieldType": type, "value": value}}}; a value of None with "deleted":
        true deletes the value. The contacts are touched (updated_at bumped). Returns their ids."""
        with self._lock:
            for contact_id, fields in changes.items():
                [i] = self._indexes([contact_id])
                ov = dict(self._overrides.get(i, ()))  # replace, never edit in place
                entries = dict(ov.get("custom_fields", {}))
                for kind, field in fields.items():
                    entries[kind] = {
                        "kind": kind,
                        "value": field.get("value"),
                        "fieldType": field.get("fieldType", "string"),
                        "deleted": bool(field.get("deleted", False)),
                    }
                ov["custom_fields"] = entries
                self._overrides[i] = ov
            return self.touch(contact_ids=list(changes))

    def add_contacts(self, count):
        """New contacts, created now; each lands where its id falls in the API
        order (anywhere: often before a running scan's position). Returns their ids."""
        count = int(count)
        if count < 0:
            raise ValueError("count must be >= 0")
        with self._lock:
            order = self._api_order()
            new = range(self._allocated, self._allocated + count)
            groups = list(self._lists.values()) + list(self._segments.values())
            for i in new:
                self._overrides[i] = {"added": self._tick()}
                self._allocated = i + 1
                cid = self._contact_id(i)
                order.insert(position_after(order, cid, self._contact_id), i)
                for group in groups:
                    if group.members is not None and self._in_group(group, i):
                        group.members.insert(position_after(group.members, cid, self._contact_id), i)
            return [self._contact_id(i) for i in new]

    def delete_contacts(self, contact_ids):
        """The contacts vanish from /contacts, every list's and segment's pages, and dump()."""
        with self._lock:
            gone = set(self._indexes(contact_ids))
            self._deleted = self._deleted | gone  # replaced, never edited: index_of reads it unlocked
            self._order = array("I", (i for i in self._api_order() if i not in gone))
            for group in list(self._lists.values()) + list(self._segments.values()):
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

    # ----- whole-dataset view ----------------------------------------------------

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
