"""Epoch milliseconds -> the timestamp texts the API sends: ISO-8601 with
milliseconds ('2015-04-29T23:15:25.347Z') and RFC 1123 ('Tue, 12 May 2015
21:41:31 GMT'). Built by hand, with a per-day cache: locale-free and fast."""

import time

_DAY_PREFIX: dict[int, str] = {}  # day number -> 'YYYY-MM-DDT' (a few thousand days at most)
_DAY_RFC: dict[int, str] = {}  # day number -> 'Tue, 12 May 2015 '
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def iso_ms(ms):
    """Epoch ms -> '2015-04-29T23:15:25.347Z'."""
    day, rem = divmod(ms, 86400000)
    prefix = _DAY_PREFIX.get(day)
    if prefix is None:
        t = time.gmtime(day * 86400)
        prefix = _DAY_PREFIX[day] = "%04d-%02d-%02dT" % (t[0], t[1], t[2])
    s, milli = divmod(rem, 1000)
    m, s = divmod(s, 60)
    h, m = divmod(m, 60)
    return "%s%02d:%02d:%02d.%03dZ" % (prefix, h, m, s, milli)


def rfc1123(ms):
    """Epoch ms -> 'Tue, 12 May 2015 21:41:31 GMT' (whole seconds)."""
    day, rem = divmod(ms, 86400000)
    prefix = _DAY_RFC.get(day)
    if prefix is None:
        t = time.gmtime(day * 86400)
        prefix = _DAY_RFC[day] = "%s, %02d %s %04d " % (_WEEKDAYS[t[6]], t[2], _MONTHS[t[1] - 1], t[0])
    s = rem // 1000
    m, s = divmod(s, 60)
    h, m = divmod(m, 60)
    return "%s%02d:%02d:%02d GMT" % (prefix, h, m, s)
