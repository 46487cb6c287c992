"""A save file taken apart and put together again, for tests that damage one part and keep
every checksum right (src/machine/savefile.h: "KITESAVE", u32 header length, the header record,
its CRC-32, the state records, the RAM at a 4 KiB boundary; src/util/state.h: the records)."""
import struct
import zlib

U32, U64 = 3, 4  # enum state_type


def parse_record(data, off=0):
    """(name, version, [[field, type, bytes]], next offset) of the record at data[off:]."""
    assert data[off:off + 4] == b"KSR1"
    n = data[off + 4]
    name = data[off + 5:off + 5 + n].decode()
    at = off + 5 + n
    version, body = struct.unpack_from("<II", data, at)
    at += 8
    end = at + body
    fields = []
    while at < end:
        k = data[at]
        fname = data[at + 1:at + 1 + k].decode()
        ftype = data[at + 1 + k]
        flen = struct.unpack_from("<I", data, at + 2 + k)[0]
        fields.append([fname, ftype, bytes(data[at + 6 + k:at + 6 + k + flen])])
        at += 6 + k + flen
    return name, version, fields, end


def build_record(name, version, fields, body_len=None):
    """A record; body_len, when given, is written in place of the body's true length."""
    body = b"".join(bytes([len(f)]) + f.encode() + bytes([t]) + struct.pack("<I", len(v)) + v
                    for f, t, v in fields)
    n = len(body) if body_len is None else body_len
    return b"KSR1" + bytes([len(name)]) + name.encode() + struct.pack("<II", version, n) + body


def split_save(path):
    """(header record, [state records], RAM) of a save file."""
    data = open(path, "rb").read()
    hlen = struct.unpack_from("<I", data, 8)[0]
    header = parse_record(data, 12)[:3]
    fields = {f: v for f, _, v in header[2]}
    state_len = struct.unpack("<Q", fields["state_length"])[0]
    ram_off = struct.unpack("<Q", fields["ram_offset"])[0]
    start = 16 + hlen
    records, off = [], start
    while off < start + state_len:
        name, version, rfields, off = parse_record(data, off)
        records.append([name, version, rfields])
    return header, records, data[ram_off:]


def set_field(fields, name, value):
    for f in fields:
        if f[0] == name:
            f[2] = value
            return
    raise KeyError(name)


def join_save(path, header, records, ram, state=None, keep=()):
    """Writes a save file of these parts with its checksums, state length and RAM offset
    right, except the header fields named in `keep`, which stay as given. `state`, when
    given, is the state part's bytes in place of the records."""
    if state is None:
        state = b"".join(build_record(*r) for r in records)
    name, version, fields = header[0], header[1], [list(f) for f in header[2]]
    fixed = {"state_length": struct.pack("<Q", len(state)),
             "state_crc32": struct.pack("<I", zlib.crc32(state))}
    for k, v in fixed.items():
        if k not in keep:
            set_field(fields, k, v)
    # The header's length does not depend on the values: the RAM's offset from a first build.
    ram_off = 0
    for _ in range(2):
        hdr = build_record(name, version, fields)
        ram_off = (16 + len(hdr) + len(state) + 4095) // 4096 * 4096
        if "ram_offset" not in keep:
            set_field(fields, "ram_offset", struct.pack("<Q", ram_off))
    hdr = build_record(name, version, fields)
    head = b"KITESAVE" + struct.pack("<I", len(hdr)) + hdr + struct.pack("<I", zlib.crc32(hdr))
    with open(path, "wb") as f:
        f.write(head + state + bytes(max(0, ram_off - len(head) - len(state))) + ram)
