"""absent_names.py - the `null` form of message_format.absent_name_fields,
derived from the golden corpus's bytes (the Rust server's `omit` form).

Every "subject" and "issuer" object of a message (leaf and chain elements)
is rewritten to carry exactly the keys C, CN, L, O, OU, ST, aggregated,
email_address in that order, with the corpus's own value bytes where the key
is present and null where it is absent. Works on the raw bytes, so the
expected message differs from the corpus only inside those objects."""

NAME_KEYS = ("C", "CN", "L", "O", "OU", "ST", "aggregated", "email_address")


def _string_end(s, i):
    """s[i] is the opening quote; returns the index after the closing one."""
    i += 1
    while s[i] != '"':
        i += 2 if s[i] == "\\" else 1
    return i + 1


def _name_object(s, i):
    """Parses the flat object at s[i] == '{' (string values only); returns
    ({key: raw value}, index after '}', keys in order)."""
    assert s[i] == "{"
    i += 1
    vals, order = {}, []
    while s[i] != "}":
        if s[i] == ",":
            i += 1
        ke = _string_end(s, i)
        key = s[i + 1:ke - 1]
        assert s[ke] == ":", s[i:ke + 20]
        vs = ke + 1
        assert s[vs] == '"', "the omit form has only string values: " + s[i:vs + 20]
        ve = _string_end(s, vs)
        vals[key] = s[vs:ve]
        order.append(key)
        i = ve
    return vals, i + 1, order


def null_form(msg):
    """The message with every subject/issuer in the null form."""
    if isinstance(msg, bytes):
        return null_form(msg.decode()).encode()
    out, i = [], 0
    while True:
        hits = [h for h in (msg.find('"subject":{', i), msg.find('"issuer":{', i)) if h >= 0]
        if not hits:
            out.append(msg[i:])
            return "".join(out)
        h = min(hits)
        start = msg.index("{", h)
        out.append(msg[i:start])
        vals, end, order = _name_object(msg, start)
        assert set(order) <= set(NAME_KEYS) and "aggregated" in vals, msg[start:end]
        out.append("{" + ",".join('"%s":%s' % (k, vals.get(k, "null")) for k in NAME_KEYS) + "}")
        i = end
