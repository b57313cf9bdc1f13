"""One small class per stream, on three base classes:

- ContactsStream: incremental on updated_at over a full bookmark-paged scan
  (the API cannot filter by date, nor sorts by it).
- ParentStream: a full-table listing (lists, smart segments), fetched once a
  run and shared with its membership stream.
- MembershipStream: for each parent, the bookmark-paged contacts on it.

A stream's sync() schedules its work on the SyncContext (sync.py), which owns
the output, the state, the thread pool and the HTTP client.
"""
import datetime
import logging
from urllib.parse import quote

from tap_autopilot.client import PAGE_SIZE, NotFoundError
from tap_autopilot.transform import format_datetime, to_datetime, to_string

LOGGER = logging.getLogger("tap_autopilot")


class Stream:
    tap_stream_id = None
    key_properties = []
    replication_method = "FULL_TABLE"
    replication_key = None
    parent = None  # tap_stream_id of the parent stream, for membership streams

    def sync(self, ctx):
        raise NotImplementedError


class ContactsStream(Stream):
    """Incremental: a contact is emitted when its updated_at >= the threshold.

    The bookmark `updated_at` only advances when a scan completes (see
    _next_threshold). While a scan runs, state holds its page bookmark, its
    threshold, the max updated_at seen so far and its start time, so a killed
    run resumes the same scan where it stopped."""

    path = "/contacts"
    data_key = "contacts"

    def sync(self, ctx):
        ctx.add_chain(self._scan(ctx))

    def _scan(self, ctx):
        """A page chain (see scheduler.py): one page per step."""
        stream_id = self.tap_stream_id
        entry = ctx.state.bookmark(stream_id)
        scan = entry.get("scan")
        if scan:
            threshold = to_datetime(scan.get("threshold")) or ctx.start_date
            position, max_seen = scan.get("bookmark"), to_datetime(scan.get("max_updated_at"))
            started = to_datetime(scan.get("started_at"))
            LOGGER.info("contacts: resuming the interrupted scan after page bookmark %s (updated_at >= %s).",
                        position, threshold)
        else:
            threshold = to_datetime(entry.get("updated_at")) or ctx.start_date
            position, max_seen, started = None, None, None
        transform = ctx.contact_transformer
        read = 0
        try:
            pages = ctx.client.paginate(self.path, self.data_key, position)
            for items, next_position, total, server_time in _resuming(pages, position, stream_id):
                if started is None:
                    started = server_time or datetime.datetime.now(datetime.timezone.utc)
                emit = ctx.record_line_maker(stream_id)  # per page: time_extracted is now
                lines = []
                for doc in items:
                    # From the document, not the row (created_at may be deselected): updated_at,
                    # else created_at for a contact never updated.
                    updated_at = transform.replication_instant(doc)
                    if updated_at is None or updated_at >= threshold:
                        lines.append(emit(transform(doc)))
                        if updated_at is not None and (max_seen is None or updated_at > max_seen):
                            max_seen = updated_at
                new_scan = {"threshold": format_datetime(threshold), "bookmark": next_position,
                            "max_updated_at": format_datetime(max_seen) if max_seen else None,
                            "started_at": format_datetime(started)}
                ctx.commit(stream_id, lines, len(items), total,
                           lambda e, s=new_scan: e.__setitem__("scan", s))
                position, read = next_position, read + len(items)
                items = lines = None  # hold no page while other chains run
                yield _pages_left(total, read)
        except RestartScan:
            # The page bookmark we stopped at is gone: re-read from the start, same threshold.
            with ctx.lock:
                ctx.state.bookmark(stream_id).pop("scan", None)
            yield from self._scan(ctx)
            return
        final = format_datetime(_next_threshold(threshold, max_seen, started))

        def finish(entry):
            entry.pop("scan", None)
            entry["updated_at"] = final
        ctx.complete(stream_id, finish)


# How far the API's clock (the Date header) may be from the clock that stamps
# updated_at: the next scan starts this much before this scan began.
CLOCK_SKEW = datetime.timedelta(minutes=5)


def _next_threshold(threshold, max_seen, started):
    """The updated_at the next scan filters with, once this scan completed.

    Not simply the newest updated_at seen: pages are not in updated_at order,
    so a contact changed during the scan on a page already read would fall
    below it while a later change on a page still ahead raised it. Anything
    changed after the scan began is taken again next time (at-least-once)."""
    if max_seen is None:
        return threshold
    if started is not None:
        max_seen = min(max_seen, started - CLOCK_SKEW)
    return max(threshold, max_seen)


class RestartScan(Exception):
    pass


def _pages_left(total, read):
    """Pages a chain still has to fetch, from the API's total_contacts."""
    if not isinstance(total, int) or isinstance(total, bool):
        return None
    return max(0, -(-(total - read) // PAGE_SIZE))


def _resuming(pages, position, stream_id):
    """A saved page bookmark can vanish between runs (its contact was deleted):
    then the pagination has to start over."""
    try:
        yield from pages
    except NotFoundError:
        if position is None:
            raise
        LOGGER.warning("%s: the saved page bookmark no longer exists; restarting this scan from the "
                       "first page (records may repeat, none are lost).", stream_id)
        raise RestartScan() from None


class ParentStream(Stream):
    """lists / smart_segments: one request returns them all."""

    key_properties = []
    path = None
    data_key = None
    id_key = None

    def fetch(self, client):
        """Every parent object, as the API returns them. Cached per run by the context."""
        items = client.get(self.path, self.data_key)[self.data_key] or []
        return [item for item in items if isinstance(item, dict) and item.get(self.id_key)]

    def sync(self, ctx):
        stream_id = self.tap_stream_id
        version = ctx.begin_version(stream_id)
        emit = ctx.record_line_maker(stream_id, version)
        selected = ctx.selected_columns(stream_id)
        # Every column of lists and segments is a string (ids and titles).
        rows = [{column: to_string(item.get(column)) for column in selected} for item in ctx.parents(self)]
        ctx.commit(stream_id, [emit(row) for row in rows], len(rows), len(rows))
        ctx.complete(stream_id, activate=version)


class MembershipStream(Stream):
    """{parent id, contact id} pairs, one bookmark-paged scan per parent.

    Parents are scanned concurrently in order of id. State keeps the pass's
    version, a watermark (every parent up to it is done), the few parents done
    beyond it, and the page bookmark of each parent in progress: small, and
    emptied when the pass completes."""

    parent_stream = None
    member_path = None
    parent_key = None

    def sync(self, ctx):
        stream_id = self.tap_stream_id
        version = ctx.begin_version(stream_id)
        entry = ctx.state.bookmark(stream_id)
        parent_ids = sorted(item[self.parent_stream.id_key] for item in ctx.parents(self.parent_stream))
        progress = _MembershipProgress(parent_ids, entry)
        todo = [pid for pid in parent_ids if not progress.is_done(pid)]
        if not todo:
            ctx.complete(stream_id, progress.finish, activate=version)
            return
        remaining = {"count": len(todo)}

        def scan_parent(parent_id):
            yield from self._scan_parent(ctx, parent_id, progress, version)
            with ctx.lock:
                remaining["count"] -= 1
                last = remaining["count"] == 0
            if last:
                ctx.complete(stream_id, progress.finish, activate=version)

        for parent_id in todo:
            ctx.add_chain(scan_parent(parent_id))

    def _scan_parent(self, ctx, parent_id, progress, version):
        """A page chain (see scheduler.py) over one parent's contacts."""
        stream_id = self.tap_stream_id
        position = progress.in_progress.get(parent_id)
        path = self.member_path.format(quote(parent_id, safe=""))
        key = self.parent_key
        read = 0
        try:
            for items, next_position, total, _ in _resuming(ctx.client.paginate(path, "contacts", position),
                                                            position, stream_id):
                emit = ctx.record_line_maker(stream_id, version)  # per page: time_extracted is now
                lines = [emit({key: parent_id, "contact_id": doc.get("contact_id")})
                         for doc in items if isinstance(doc, dict) and doc.get("contact_id")]
                if next_position is None:
                    update = lambda entry: progress.done(parent_id, entry)
                else:
                    update = lambda entry, p=next_position: progress.advance(parent_id, p, entry)
                ctx.commit(stream_id, lines, len(items), None, update)
                read += len(items)
                items = lines = None  # hold no page while other chains run
                yield _pages_left(total, read)
        except RestartScan:
            progress.in_progress.pop(parent_id, None)
            yield from self._scan_parent(ctx, parent_id, progress, version)
        except NotFoundError:
            LOGGER.warning("%s: %s %s disappeared during the sync (404); skipping it.",
                           stream_id, self.parent_key, parent_id)
            ctx.commit(stream_id, [], 0, None, lambda entry: progress.done(parent_id, entry))


class _MembershipProgress:
    """Which parents of a membership pass are done, and where the others stand.
    Mutated only under the context's output lock (through ctx.commit)."""

    def __init__(self, parent_ids, entry):
        self.order = parent_ids
        self.watermark = entry.get("done_through")
        self.done_beyond = set(entry.get("done_beyond") or [])
        self.in_progress = dict(entry.get("in_progress") or {})

    def is_done(self, parent_id):
        return (self.watermark is not None and parent_id <= self.watermark) or parent_id in self.done_beyond

    def advance(self, parent_id, position, entry):
        self.in_progress[parent_id] = position
        self._save(entry)

    def done(self, parent_id, entry):
        self.in_progress.pop(parent_id, None)
        self.done_beyond.add(parent_id)
        for pid in self.order:
            if self.watermark is not None and pid <= self.watermark:
                continue
            if pid not in self.done_beyond:
                break
            self.done_beyond.discard(pid)
            self.watermark = pid
        self._save(entry)

    def _save(self, entry):
        entry["done_through"] = self.watermark
        entry["done_beyond"] = sorted(self.done_beyond)
        entry["in_progress"] = dict(self.in_progress)

    @staticmethod
    def finish(entry):
        for key in ("done_through", "done_beyond", "in_progress"):
            entry.pop(key, None)


class Contacts(ContactsStream):
    tap_stream_id = "contacts"
    key_properties = ["contact_id"]
    replication_method = "INCREMENTAL"
    replication_key = "updated_at"


class Lists(ParentStream):
    tap_stream_id = "lists"
    key_properties = ["list_id"]
    path = "/lists"
    data_key = "lists"
    id_key = "list_id"


class SmartSegments(ParentStream):
    tap_stream_id = "smart_segments"
    key_properties = ["segment_id"]
    path = "/smart_segments"
    data_key = "segments"
    id_key = "segment_id"


class ListsContacts(MembershipStream):
    tap_stream_id = "lists_contacts"
    key_properties = ["list_id", "contact_id"]
    parent = "lists"
    parent_stream = Lists()
    member_path = "/list/{}/contacts"
    parent_key = "list_id"


class SmartSegmentsContacts(MembershipStream):
    tap_stream_id = "smart_segments_contacts"
    key_properties = ["segment_id", "contact_id"]
    parent = "smart_segments"
    parent_stream = SmartSegments()
    member_path = "/smart_segments/{}/contacts"
    parent_key = "segment_id"


STREAMS = {stream.tap_stream_id: stream for stream in (
    Contacts(), Lists(), ListsContacts(), SmartSegments(), SmartSegmentsContacts())}
